package deploy_test

import (
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wardmesh/ward/deploy"
)

// helmRender renders the chart in chartDir as `helm template --namespace ns` would,
// with Helm's loader, value coalescing and template engine.
func helmRender(t *testing.T, chartDir, ns string, overrides map[string]any) []*unstructured.Unstructured {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("helm: load chart: %v", err)
	}
	if overrides == nil {
		overrides = map[string]any{}
	}
	vals, err := util.ToRenderValues(ch, overrides, common.ReleaseOptions{Name: "ward", Namespace: ns, IsInstall: true}, nil)
	if err != nil {
		t.Fatalf("helm: values: %v", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("helm: render: %v", err)
	}
	var names []string
	for n := range files {
		if strings.HasSuffix(n, ".yaml") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, n := range names {
		objs, err := deploy.ParseObjects([]byte(files[n]))
		if err != nil {
			t.Fatalf("helm output %s: %v", n, err)
		}
		out = append(out, objs...)
	}
	return out
}

// Ambient mode needs the release namespace ward-system (node identities
// are ward-system/ward-node); Ward's renderer and Helm both refuse
// another one with the same message.
func TestAmbientNeedsWardSystem(t *testing.T) {
	v, err := deploy.Default().Merge([]byte("ambient: {enabled: true}"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "ambient.enabled: node identities are ward-system/ward-node"
	if _, err := deploy.Render(v, "mesh-ctl"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ward render into mesh-ctl: %v, want %q", err, want)
	}
	ch, err := loader.LoadDir("helm/ward")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := util.ToRenderValues(ch, map[string]any{"ambient": map[string]any{"enabled": true}}, common.ReleaseOptions{Name: "ward", Namespace: "mesh-ctl", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, vals); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("helm render into mesh-ctl: %v, want %q", err, want)
	}

	ms, err := deploy.Render(v, deploy.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Objects(ms)
	if err != nil {
		t.Fatal(err)
	}
	var ds *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "DaemonSet" && o.GetName() == "ward-node" {
			ds = o
		}
	}
	if ds == nil {
		t.Fatal("no ward-node DaemonSet")
	}
	spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	if spec["serviceAccountName"] != "ward-node" || spec["automountServiceAccountToken"] != false {
		t.Errorf("pod spec runs as %v (automount %v), want ward-node with only the projected token", spec["serviceAccountName"], spec["automountServiceAccountToken"])
	}
	vols, _, _ := unstructured.NestedSlice(spec, "volumes")
	var aud any
	for _, vol := range vols {
		srcs, _, _ := unstructured.NestedSlice(vol.(map[string]any), "projected", "sources")
		for _, s := range srcs {
			aud, _, _ = unstructured.NestedFieldNoCopy(s.(map[string]any), "serviceAccountToken", "audience")
		}
	}
	if aud != "ward-ca" {
		t.Errorf("projected token audience %v, want ward-ca (the CA's)", aud)
	}
}
