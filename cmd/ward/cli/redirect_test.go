package cli

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/redirect"
	"github.com/wardmesh/ward/webhook"
)

func TestRedirectDryRun(t *testing.T) {
	out, err := execRoot(t, "redirect", "--dry-run", "--include-inbound-ports", "8080,9000", "--exclude-inbound-ports", "9090",
		"--exclude-outbound-ports", "9443", "--include-outbound-ip-ranges", "10.96.0.0/12", "--exclude-outbound-ip-ranges", "10.96.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := redirect.DefaultConfig()
	want.IncludeInboundPorts = redirect.PortSet{Ports: []uint16{8080, 9000}}
	want.ExcludeInboundPorts = []uint16{9090}
	want.ExcludeOutboundPorts = []uint16{9443}
	want.IncludeOutboundRanges = redirect.RangeSet{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}
	want.ExcludeOutboundRanges = []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32")}
	if diff := cmp.Diff(redirect.Render(want), out); diff != "" {
		t.Errorf("ward redirect --dry-run (-want +got):\n%s", diff)
	}
}

func TestRedirectRejectsBadFlags(t *testing.T) {
	for flag, value := range map[string]string{
		"include-inbound-ports": "http", "exclude-inbound-ports": "70000", "exclude-outbound-ports": "0",
		"include-outbound-ip-ranges": "10.0.0.0/33", "exclude-outbound-ip-ranges": "example.com",
	} {
		_, err := execRoot(t, "redirect", "--dry-run", "--"+flag, value)
		if err == nil || !strings.Contains(err.Error(), "--"+flag) || !strings.Contains(err.Error(), value) {
			t.Errorf("--%s %s: error %v, want one naming the flag and the value", flag, value, err)
		}
	}
	if _, err := execRoot(t, "redirect", "--dry-run", "--cleanup"); err == nil {
		t.Error("--dry-run with --cleanup accepted")
	}
}

// TestRedirectInstallsAndCleansUp runs the command for real in a network
// namespace it creates (root only; the traffic itself is proven in
// package redirect).
func TestRedirectInstallsAndCleansUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	name := fmt.Sprintf("ward-cli-redirect-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ns := "/run/netns/" + name
	cfg := redirect.DefaultConfig()
	cfg.NetNS = ns
	for _, args := range [][]string{{"redirect", "--netns", ns}, {"redirect", "--netns", ns, "--exclude-inbound-ports", "9090"}} {
		out, err := execRoot(t, args...)
		if err != nil || !strings.HasPrefix(out, "installed nf_tables table inet ward:\n") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if ok, err := redirect.Installed(cfg); !ok || err != nil {
			t.Fatalf("after %v: installed %v, err %v", args, ok, err)
		}
	}
	if out, err := execRoot(t, "redirect", "--netns", ns, "--cleanup"); err != nil || out != "removed nf_tables table inet ward\n" {
		t.Fatalf("--cleanup: %v\n%s", err, out)
	}
	if ok, err := redirect.Installed(cfg); ok || err != nil {
		t.Fatalf("after --cleanup: installed %v, err %v", ok, err)
	}
}

// TestAgentBootstrapOut: --out writes exactly what stdout gets, with no
// temporary file left beside it.
func TestAgentBootstrapOut(t *testing.T) {
	args := []string{"agent", "bootstrap", "--envoy", "--ns", "shop", "--sa", "web", "--name", "web-1", "--ip", "10.0.0.7",
		"--xds-addr", "ward.ward-system.svc:15012", "--state", "/var/run/ward/agent"}
	stdout, err := execRoot(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "envoy.json")
	out, err := execRoot(t, append(args, "--out", path)...)
	if err != nil || out != "" {
		t.Fatalf("--out: err %v, stdout %q", err, out)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stdout, string(got)); diff != "" || !strings.Contains(stdout, `"web-1`) {
		t.Errorf("--out file differs from stdout (-stdout +file):\n%s", diff)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("%d files beside the bootstrap, want none", len(ents)-1)
	}
}

// TestInjectedInitContainersRun runs the injector's init containers'
// arguments through this command tree (the Ward image's entrypoint):
// ward-init's with --dry-run added, ward-bootstrap's with --out moved to
// a temporary file. The webhook's flags and the CLI's cannot drift apart.
func TestInjectedInitContainersRun(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop", Annotations: map[string]string{
			webhook.AnnotationIncludeInboundPorts:     "8080",
			webhook.AnnotationExcludeOutboundIPRanges: "169.254.169.254",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "api:1"}}},
	}
	out, _, err := webhook.Inject(pod, webhook.InjectConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range out.Spec.InitContainers {
		args := slices.Clone(c.Args)
		switch c.Name {
		case webhook.ContainerRedirect:
			got, err := execRoot(t, append(args, "--dry-run")...)
			if err != nil || !strings.Contains(got, "tcp dport 8080 jump in_redirect") || !strings.Contains(got, "ip daddr 169.254.169.254/32 return") {
				t.Errorf("%s %q: %v\n%s", c.Name, args, err, got)
			}
		case webhook.ContainerBootstrap:
			i := slices.Index(args, "--out")
			if i < 0 {
				t.Fatalf("%s %q has no --out", c.Name, args)
			}
			args[i+1] = filepath.Join(t.TempDir(), "envoy.json")
			if _, err := execRoot(t, args...); err != nil {
				t.Errorf("%s %q: %v", c.Name, args, err)
			} else if _, err := os.Stat(args[i+1]); err != nil {
				t.Errorf("%s wrote no bootstrap: %v", c.Name, err)
			}
		default:
			continue
		}
		ran++
	}
	if ran != 2 {
		t.Errorf("ran %d injected init containers, want 2", ran)
	}
}
