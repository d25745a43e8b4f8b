package webhook_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// injectCases are the injection goldens; tests of properties every
// injected pod must have run over all of them.
var injectCases = []struct {
	pod, golden string
	cfg         webhook.InjectConfig
}{
	{"pod.yaml", "pod.injected.golden.yaml", webhook.InjectConfig{ProxyImage: "envoy:test", WardImage: "ward:test"}},
	{"pod.yaml", "pod.cni.golden.yaml", webhook.InjectConfig{ProxyImage: "envoy:test", WardImage: "ward:test", CNI: true}},
	{"pod.annotated.yaml", "pod.annotated.golden.yaml", webhook.InjectConfig{ProxyImage: "envoy:test", WardImage: "ward:test"}},
}

func TestInjectGolden(t *testing.T) {
	for _, tc := range injectCases {
		t.Run(tc.golden, func(t *testing.T) {
			in := readPod(t, filepath.Join("testdata", tc.pod))
			out, changed, err := webhook.Inject(in, tc.cfg)
			if err != nil || !changed {
				t.Fatalf("Inject: changed %v, err %v", changed, err)
			}
			got, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("injected pod differs from %s (-want +got; -update rewrites):\n%s", path, diff)
			}
			// Re-injection (reinvocation, or `ward inject` twice) is a no-op.
			again, changed, err := webhook.Inject(out, tc.cfg)
			if err != nil || changed || !cmp.Equal(again, out) {
				t.Errorf("re-injection changed the pod (changed %v, err %v)", changed, err)
			}
			if in.Labels["security.istio.io/tlsMode"] != "" || len(in.Spec.Containers) != 1 || len(in.Spec.InitContainers) > 1 {
				t.Error("Inject modified its input")
			}
		})
	}
}

func TestInjectRefusesHalfInjectedPod(t *testing.T) {
	p := readPod(t, "testdata/pod.yaml")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: webhook.ContainerProxy})
	if _, _, err := webhook.Inject(p, webhook.InjectConfig{}); err == nil {
		t.Fatal("a pod with a ward-proxy container but no status annotation was injected")
	}
}

func TestShouldInject(t *testing.T) {
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	pod := func(labels map[string]string, hostNet bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{HostNetwork: hostNet}}
	}
	enabled := map[string]string{webhook.LabelInjectNamespace: "enabled"}
	optIn := map[string]string{webhook.LabelInject: "true"}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		ns   *corev1.Namespace
		want bool
	}{
		"enabled namespace":          {pod(nil, false), ns("a", enabled), true},
		"plain namespace":            {pod(nil, false), ns("a", nil), false},
		"pod opt-in":                 {pod(optIn, false), ns("a", nil), true},
		"pod opt-out":                {pod(map[string]string{webhook.LabelInject: "false"}, false), ns("a", enabled), false},
		"namespace disabled wins":    {pod(optIn, false), ns("a", map[string]string{webhook.LabelInjectNamespace: "disabled"}), false},
		"hostNetwork":                {pod(optIn, true), ns("a", enabled), false},
		"kube-system":                {pod(optIn, false), ns("kube-system", enabled), false},
		"our revision":               {pod(nil, false), ns("a", map[string]string{webhook.LabelRevision: "default"}), true},
		"another revision":           {pod(nil, false), ns("a", map[string]string{webhook.LabelRevision: "canary"}), false},
		"offline (no namespace)":     {pod(nil, false), nil, true},
		"offline hostNetwork":        {pod(nil, true), nil, false},
		"pod opt-in beats revision":  {pod(optIn, false), ns("a", map[string]string{webhook.LabelRevision: "canary"}), true},
		"opt-out beats offline mode": {pod(map[string]string{webhook.LabelInject: "false"}, false), nil, false},
	} {
		if got := webhook.ShouldInject(tc.pod, tc.ns, webhook.InjectConfig{}); got.Inject != tc.want {
			t.Errorf("%s: inject = %v (%s), want %v", name, got.Inject, got.Reason, tc.want)
		}
	}
}

// A control plane installed into another namespace injects agents that
// reach it at its Service there and pin the identity its serving
// certificate carries; explicit addresses still win.
func TestInjectFollowsControlPlaneNamespace(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webhook.InjectConfig
		want map[string]string // flag -> value, on the agent and the bootstrap
	}{
		{"default namespace", webhook.InjectConfig{}, map[string]string{
			"--ca-addr": "ward.ward-system.svc:15012", "--xds-addr": "ward.ward-system.svc:15012", "--ca-server-id": ""}},
		{"mesh-ctl", webhook.InjectConfig{Namespace: "mesh-ctl"}, map[string]string{
			"--ca-addr": "ward.mesh-ctl.svc:15012", "--xds-addr": "ward.mesh-ctl.svc:15012",
			"--ca-server-id": "spiffe://cluster.local/ns/mesh-ctl/sa/ward"}},
		{"mesh-ctl, other service and trust domain", webhook.InjectConfig{Namespace: "mesh-ctl", Service: "ward-canary", TrustDomain: "prod.example"}, map[string]string{
			"--ca-addr": "ward-canary.mesh-ctl.svc:15012", "--ca-server-id": "spiffe://prod.example/ns/mesh-ctl/sa/ward"}},
		{"explicit addresses", webhook.InjectConfig{Namespace: "mesh-ctl", CAAddr: "ca.example:443", XDSAddr: "xds.example:443"}, map[string]string{
			"--ca-addr": "ca.example:443", "--xds-addr": "xds.example:443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := webhook.Inject(readPod(t, filepath.Join("testdata", "pod.yaml")), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, c := range append(out.Spec.InitContainers, out.Spec.Containers...) {
				if c.Name != webhook.ContainerAgent && c.Name != webhook.ContainerBootstrap {
					continue
				}
				seen++
				for flag, want := range tc.want {
					if flag == "--ca-addr" && c.Name == webhook.ContainerBootstrap {
						continue // the bootstrap only writes Envoy's config
					}
					if got := argValue(c.Args, flag); got != want {
						t.Errorf("%s: %s %q, want %q (args %q)", c.Name, flag, got, want, c.Args)
					}
				}
			}
			if seen != 2 {
				t.Errorf("%d agent and bootstrap containers, want 2", seen)
			}
		})
	}
}

// argValue is the value after flag in args ("" when absent).
func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
