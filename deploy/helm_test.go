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
