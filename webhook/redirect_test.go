package webhook_test

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/wardmesh/ward/webhook"
)

// shells are programs no injected container may run: the Ward image is
// distroless and has none of them.
var shells = []string{"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"}

// TestInjectedContainersRunNoShell: in every injection case, no container
// Ward adds runs a shell or an external tool — not as its command, not
// anywhere in its arguments — and the ones on the Ward image run its
// entrypoint (ward) with arguments only.
func TestInjectedContainersRunNoShell(t *testing.T) {
	for _, tc := range injectCases {
		in := readPod(t, filepath.Join("testdata", tc.pod))
		out, _, err := webhook.Inject(in, tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.golden, err)
		}
		injected := 0
		for _, c := range slices.Concat(out.Spec.InitContainers, out.Spec.Containers) {
			if !strings.HasPrefix(c.Name, "ward-") {
				continue
			}
			injected++
			for i, a := range slices.Concat(c.Command, c.Args) {
				base := path.Base(strings.Fields(a + " x")[0])
				if slices.Contains(shells, base) || strings.Contains(a, "/bin/sh") || strings.Contains(a, "iptables") {
					t.Errorf("%s: container %s runs %q (word %d of %q)", tc.golden, c.Name, a, i, slices.Concat(c.Command, c.Args))
				}
			}
			if c.Image == tc.cfg.WardImage && len(c.Command) != 0 {
				t.Errorf("%s: container %s overrides the Ward image's entrypoint with %q", tc.golden, c.Name, c.Command)
			}
		}
		if want := 3 + btoi(!tc.cfg.CNI); injected != want {
			t.Errorf("%s: %d injected containers checked, want %d", tc.golden, injected, want)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func redirectArgs(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	for _, c := range pod.Spec.InitContainers {
		if c.Name == webhook.ContainerRedirect {
			return c.Args
		}
	}
	t.Fatalf("no %s init container", webhook.ContainerRedirect)
	return nil
}

// TestInjectRedirectAnnotations: Istio's traffic annotations become
// `ward redirect` flags in canonical form; defaults are spelled out.
func TestInjectRedirectAnnotations(t *testing.T) {
	tail := []string{"--inbound-port=15006", "--outbound-port=15001", "--proxy-uid=1337", "--proxy-gid=1337"}
	for name, tc := range map[string]struct {
		annotations map[string]string
		want        []string
	}{
		"defaults": {nil, []string{"--include-inbound-ports=*", "--exclude-inbound-ports=", "--exclude-outbound-ports=",
			"--include-outbound-ip-ranges=*", "--exclude-outbound-ip-ranges="}},
		"all five": {map[string]string{
			webhook.AnnotationIncludeInboundPorts:     " 8080, 9000",
			webhook.AnnotationExcludeInboundPorts:     "9090",
			webhook.AnnotationExcludeOutboundPorts:    "5432,6379",
			webhook.AnnotationIncludeOutboundIPRanges: "10.96.0.0/12,fd00:10:96::/108",
			webhook.AnnotationExcludeOutboundIPRanges: "10.96.0.1, 169.254.169.254/32",
		}, []string{"--include-inbound-ports=8080,9000", "--exclude-inbound-ports=9090", "--exclude-outbound-ports=5432,6379",
			"--include-outbound-ip-ranges=10.96.0.0/12,fd00:10:96::/108", "--exclude-outbound-ip-ranges=10.96.0.1/32,169.254.169.254/32"}},
		"capture nothing inbound or outbound": {map[string]string{
			webhook.AnnotationIncludeInboundPorts: "", webhook.AnnotationIncludeOutboundIPRanges: "",
		}, []string{"--include-inbound-ports=", "--exclude-inbound-ports=", "--exclude-outbound-ports=",
			"--include-outbound-ip-ranges=", "--exclude-outbound-ip-ranges="}},
	} {
		p := readPod(t, "testdata/pod.yaml")
		p.Annotations = tc.annotations
		out, _, err := webhook.Inject(p, webhook.InjectConfig{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := slices.Concat([]string{"redirect"}, tc.want, tail)
		if diff := cmp.Diff(want, redirectArgs(t, out)); diff != "" {
			t.Errorf("%s: ward redirect args (-want +got):\n%s", name, diff)
		}
	}
}

// TestInjectRejectsInvalidTrafficAnnotations: a value the capture cannot
// honour fails injection, naming the annotation and the value, rather
// than capturing traffic the pod excluded.
func TestInjectRejectsInvalidTrafficAnnotations(t *testing.T) {
	for annotation, value := range map[string]string{
		webhook.AnnotationIncludeInboundPorts:     "http",
		webhook.AnnotationExcludeInboundPorts:     "70000",
		webhook.AnnotationExcludeOutboundPorts:    "5432,x",
		webhook.AnnotationIncludeOutboundIPRanges: "10.0.0.0/33",
		webhook.AnnotationExcludeOutboundIPRanges: "metadata.google.internal",
	} {
		p := readPod(t, "testdata/pod.yaml")
		p.Annotations = map[string]string{annotation: value}
		_, _, err := webhook.Inject(p, webhook.InjectConfig{})
		if err == nil || !strings.Contains(err.Error(), annotation) || !strings.Contains(err.Error(), "shop/web") {
			t.Errorf("%s=%q: error %v, want one naming the pod and the annotation", annotation, value, err)
		}
		// With a CNI plugin redirecting, the annotations are its business.
		if _, _, err := webhook.Inject(p, webhook.InjectConfig{CNI: true}); err != nil {
			t.Errorf("%s=%q with CNI: %v", annotation, value, err)
		}
	}
}
