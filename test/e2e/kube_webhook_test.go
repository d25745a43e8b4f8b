package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/kube/kubetest"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The API server calls `ward serve --kube`'s webhooks over TLS with the
// caBundle Ward maintains: pods are injected exactly as `ward inject`
// does offline, and invalid Istio objects are refused.
func TestKubeServeWebhooksMatchWardInject(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	ns := env.UniqueNamespace(t, "ward-wh", nil)
	port := freePort(t)
	dir := t.TempDir()
	p := startWard(t, "serve", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", ns, "--kube-identity", "wh",
		"--config", "", "--state", filepath.Join(dir, "state"), "--server-name", "127.0.0.1",
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0",
		"--webhook-addr", fmt.Sprintf("127.0.0.1:%d", port))
	r := &kubeReplica{id: "wh", proc: p}
	r.waitServing(t)
	env.InstallWebhooks(t, fmt.Sprintf("https://127.0.0.1:%d", port))
	env.WaitCABundle(t, waitForKube)

	inj := env.UniqueNamespace(t, "wh-inj", map[string]string{"istio-injection": "enabled"})
	podYAML := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: %s, labels: {app: web}}
spec:
  containers: [{name: app, image: web:1}]
`, inj)
	env.Kubectl(t, podYAML, "apply", "-f", "-")
	stored, err := env.Clients.Kube.CoreV1().Pods(inj).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(in, []byte(podYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(buildWard(t), "inject", "--ward-namespace", ns, "-f", in).Output()
	if err != nil {
		t.Fatalf("ward inject: %v", err)
	}
	var offline corev1.Pod
	if err := yaml.UnmarshalStrict(out, &offline); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shape(&offline), shape(stored)); diff != "" {
		t.Errorf("webhook and ward inject differ (-offline +webhook):\n%s", diff)
	}
	if stored.Labels["security.istio.io/tlsMode"] != "istio" {
		t.Errorf("stored pod labels %v", stored.Labels)
	}

	bad := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: %s}
spec:
  hosts: [web]
  gateways: ["istio-system/bad_gw"]
  http:
  - route: [{destination: {host: web}}]
`, inj)
	msg, err := env.KubectlErr(bad, "apply", "-f", "-")
	if err == nil || !strings.Contains(msg, `admission webhook "validation.wardmesh.io" denied the request: VirtualService `+inj+`/bad: spec.gateways[0]`) {
		t.Errorf("invalid VirtualService: err %v, output:\n%s", err, msg)
	}
}

const waitForKube = 30 * time.Second

// podShape is what injection decides, without the fields the API server
// defaults.
type podShape struct {
	Init, Containers []string
	Volumes          []string
	Labels           map[string]string
	Status           string
}

func shape(p *corev1.Pod) podShape {
	s := podShape{Labels: p.Labels, Status: p.Annotations["sidecar.istio.io/status"]}
	c := func(cs []corev1.Container) (out []string) {
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %s %q %q", c.Name, c.Image, c.Command, c.Args))
		}
		return out
	}
	s.Init, s.Containers = c(p.Spec.InitContainers), c(p.Spec.Containers)
	for _, v := range p.Spec.Volumes {
		if !strings.HasPrefix(v.Name, "kube-api-access-") { // added by the ServiceAccount plugin
			s.Volumes = append(s.Volumes, v.Name)
		}
	}
	return s
}
