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

// The ambient DaemonSet follows the namespace it is installed into: its
// node proxies verify the control plane as <namespace>/ward and so take
// node identities <namespace>/ward-node/node/<node>, as the CA of a
// control plane running there issues them; Helm and Ward render the same.
func TestAmbientDaemonSet(t *testing.T) {
	v, err := deploy.Default().Merge([]byte("ambient: {enabled: true}"))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := deploy.Render(v, "mesh-ctl")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadDir("helm/ward")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := util.ToRenderValues(ch, map[string]any{"ambient": map[string]any{"enabled": true}}, common.ReleaseOptions{Name: "ward", Namespace: "mesh-ctl", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, vals); err != nil {
		t.Fatalf("helm render into mesh-ctl: %v", err)
	}
	if all := string(deploy.YAML(ours)); !strings.Contains(all, "--ca-server-id=spiffe://cluster.local/ns/mesh-ctl/sa/ward") {
		t.Errorf("ambient DaemonSet in mesh-ctl does not verify the control plane as mesh-ctl/ward:\n%s", all)
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
