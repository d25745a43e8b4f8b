package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/deploy"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/release/image"
)

var update = flag.Bool("update", false, "rewrite the kustomize base in deploy/ from the chart")

// The committed kustomize base is exactly the chart rendered with its
// default values: edit deploy/helm/ward and run
// go test ./deploy -run TestKustomizeBaseUpToDate -update.
func TestKustomizeBaseUpToDate(t *testing.T) {
	ms, err := deploy.Render(deploy.Default(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := deploy.Kustomize(ms)
	if *update {
		if err := deploy.WriteKustomize(".", ms); err != nil {
			t.Fatal(err)
		}
	}
	have, _ := filepath.Glob("*.yaml")
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	sort.Strings(have)
	if !slices.Equal(have, names) {
		t.Errorf("deploy/*.yaml = %v, want %v (run with -update; remove stale files)", have, names)
	}
	for _, n := range names {
		got, err := os.ReadFile(n)
		if err != nil {
			t.Errorf("%v (run with -update)", err)
			continue
		}
		if d := cmp.Diff(string(want[n]), string(got)); d != "" {
			t.Errorf("deploy/%s is not the chart's output (run with -update); -want +got:\n%s", n, d)
		}
	}
}

// values.yaml and the Values struct hold the same keys: strict decoding
// rejects a key the struct lacks, and this rejects a field the file lacks
// (Helm would render it as empty).
func TestValuesFileMatchesStruct(t *testing.T) {
	b, err := os.ReadFile("helm/ward/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	jb, _ := json.Marshal(deploy.Default())
	var fromStruct map[string]any
	if err := json.Unmarshal(jb, &fromStruct); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(file, fromStruct); d != "" {
		t.Errorf("values.yaml vs deploy.Values (-file +struct):\n%s", d)
	}
}

// The chart rendered by Helm's own engine with its default values is the
// kustomize base as kubectl kustomize builds it, object for object.
func TestHelmChartEqualsKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kubectl not found (hack/install-kube.sh installs it)")
		}
		t.Skip("kubectl not found")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/: %v", err)
	}
	kustomized, err := deploy.ParseObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	compareObjects(t, "helm", helmRender(t, "helm/ward", deploy.DefaultNamespace, nil), "kustomize", kustomized)
}

// Ward's renderer and Helm's engine agree on values that take every
// branch of the templates, so `ward install --set`-style values and
// `helm install --values` give the same objects.
func TestRendererAgreesWithHelm(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		ns           string // default mesh-ctl
	}{
		{name: "defaults", values: "{}"},
		{name: "ambient", ns: "ward-system", values: "ambient: {enabled: true}\nimages: {ward: {digest: \"sha256:3333333333333333333333333333333333333333333333333333333333333333\"}}"},
		{name: "everything", values: `
namespace: {create: false}
images:
  ward: {repository: registry.example/ward, tag: v1.2.3, digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333"}
  proxy: envoyproxy/envoy:v1.36.1
trustDomain: prod.example.org
meshConfig: {rootNamespace: mesh-root, outboundTrafficPolicy: REGISTRY_ONLY, defaultCertTTL: 12h, maxCertTTL: 24h}
replicas: 1
resources: {requests: {cpu: "1", memory: 1Gi}}
cacerts: {enabled: false, secretName: cacerts}
debug: {service: false, tlsPort: 15015, operators: [ops/admin, ops/sre]}
xds: {plaintextPort: 15010}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ns == "" {
				tc.ns = "mesh-ctl"
			}
			v, err := deploy.Default().Merge([]byte(tc.values))
			if err != nil {
				t.Fatal(err)
			}
			ms, err := deploy.Render(v, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := deploy.Objects(ms)
			if err != nil {
				t.Fatal(err)
			}
			var overrides map[string]any
			if err := yaml.Unmarshal([]byte(tc.values), &overrides); err != nil {
				t.Fatal(err)
			}
			compareObjects(t, "helm", helmRender(t, "helm/ward", tc.ns, overrides), "ward", ours)
		})
	}
}

// --images pins the Deployment's image and the injector's (--ward-image)
// to the built digest; no tag reference is left.
func TestPinImages(t *testing.T) {
	l, err := image.LoadManifest("testdata/images.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := deploy.Default().Pin(l)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := deploy.Render(v, "")
	if err != nil {
		t.Fatal(err)
	}
	const ref = "ghcr.io/wardmesh/ward@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	objs, _ := deploy.Objects(ms)
	var checked bool
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		c := cs[0].(map[string]any)
		if c["image"] != ref {
			t.Errorf("image %v, want %s", c["image"], ref)
		}
		if args := strings.Join(toStrings(c["args"]), " "); !strings.Contains(args, "--ward-image="+ref) {
			t.Errorf("args %s lack --ward-image=%s", args, ref)
		}
		checked = true
	}
	if !checked {
		t.Fatal("no Deployment rendered")
	}
	if all := deploy.YAML(ms); bytes.Contains(all, []byte("ghcr.io/wardmesh/ward:")) {
		t.Error("a tag reference to the ward image is left")
	}
	if _, err := image.LoadManifest("testdata/nonexistent.json"); err == nil {
		t.Error("LoadManifest of a missing file: no error")
	}
}

func TestValuesRejected(t *testing.T) {
	for _, bad := range []string{
		"replicas: 0",
		"images: {ward: {digest: sha256:abc}}",
		"debug: {tlsPort: 15012}",
		"trustDomian: x",
	} {
		if _, err := deploy.Default().Merge([]byte(bad)); err == nil {
			t.Errorf("values %q: no error", bad)
		}
	}
}

// Every kind Ward reads has a CRD serving every version it accepts.
func TestCRDsCoverKinds(t *testing.T) {
	ms, err := deploy.Render(deploy.Default(), "")
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := deploy.Objects(ms)
	served := map[string][]string{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		vs, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
		for _, v := range vs {
			served[group+"/"+kind] = append(served[group+"/"+kind], v.(map[string]any)["name"].(string))
		}
	}
	for _, k := range mesh.Kinds() {
		info, _ := k.Info()
		if got := served[info.Group+"/"+string(k)]; !slices.Equal(got, info.Versions) {
			t.Errorf("CRD %s/%s serves %v, want %v", info.Group, k, got, info.Versions)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

func compareObjects(t *testing.T, an string, a []*unstructured.Unstructured, bn string, b []*unstructured.Unstructured) {
	t.Helper()
	index := func(objs []*unstructured.Unstructured) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, o := range objs {
			if _, dup := m[key(o)]; dup {
				t.Errorf("%s twice", key(o))
			}
			m[key(o)] = o.Object
		}
		return m
	}
	if len(a) == 0 {
		t.Fatalf("%s rendered nothing", an)
	}
	if d := cmp.Diff(index(a), index(b)); d != "" {
		t.Errorf("-%s +%s:\n%s", an, bn, d)
	}
}

// `ward manifest generate --format helm` with pinned images writes a
// chart that Helm renders to what Ward renders with the same values.
func TestWriteChartPinned(t *testing.T) {
	l, err := image.LoadManifest("testdata/images.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := deploy.Default().Pin(l)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := deploy.WriteChart(dir, v); err != nil {
		t.Fatal(err)
	}
	ms, err := deploy.Render(v, "")
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := deploy.Objects(ms)
	compareObjects(t, "helm", helmRender(t, dir, deploy.DefaultNamespace, nil), "ward", ours)
}

// Installed into another namespace, nothing in the manifests names
// ward-system: every namespaced object, the webhooks' service reference,
// the serving certificate's names and the injector's CA address follow
// the release namespace.
func TestRenderOtherNamespace(t *testing.T) {
	ms, err := deploy.Render(deploy.Default(), "mesh-ctl")
	if err != nil {
		t.Fatal(err)
	}
	out := string(deploy.YAML(ms))
	for i, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "ward-system") {
			t.Errorf("line %d names ward-system: %s", i+1, line)
		}
	}
	for _, want := range []string{
		"--server-name=ward.mesh-ctl.svc\n",
		"--injector-ca-addr=ward.mesh-ctl.svc:15012\n",
		"service: {name: ward, namespace: mesh-ctl, path: /inject, port: 15017}",
		"service: {name: ward, namespace: mesh-ctl, path: /validate, port: 15017}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered manifests lack %q", strings.TrimSpace(want))
		}
	}
}
