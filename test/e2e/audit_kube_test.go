package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardmesh/ward/kube/kubetest"
)

// TestAuditKube audits config read from a real kube-apiserver: the same
// model as from a directory, and the CA Secret's absence is reported.
func TestAuditKube(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	const ns = "audit-kube"
	env.Namespace(t, ns, nil)
	env.Kubectl(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: audit-kube}
spec:
  hosts: ["web.audit-kube.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: audit-kube}
spec: {address: 127.0.0.2, serviceAccount: web, labels: {app: web, security.istio.io/tlsMode: istio}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: audit-kube}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: audit-kube}
spec:
  selector: {matchLabels: {app: nosuch}}
  action: DENY
  rules: [{from: [{source: {namespaces: ["evil"]}}]}]
`, "apply", "-f", "-")

	out, stderr, code := runWard(t, "audit", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", ns, "-o", "json")
	if code != 0 {
		t.Fatalf("audit --kube: exit %d: %s", code, stderr)
	}
	var r struct {
		Source string
		MTLS   []struct {
			Namespace, Workload, Mode string
			Ports                     []struct {
				Port uint32
				From string
			}
		}
		Certificates struct {
			Available bool
			Note      string
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range r.MTLS {
		if m.Namespace == ns && m.Workload == "web-1" {
			found = m.Mode == "STRICT" && len(m.Ports) == 1 && m.Ports[0].Port == 8080 && m.Ports[0].From == "namespace audit-kube/default"
		}
	}
	if r.Source != "kubernetes" || !found {
		t.Errorf("audit --kube: source %q, mtls %+v; want web-1:8080 STRICT from audit-kube/default", r.Source, r.MTLS)
	}
	if r.Certificates.Available || !strings.Contains(r.Certificates.Note, "no CA state") {
		t.Errorf("certificates = %+v, want no CA (no ward-ca Secret in %s)", r.Certificates, ns)
	}
}

// TestAnalyzeKube runs the analyzers on config read from Kubernetes.
func TestAnalyzeKube(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	const ns = "analyze-kube"
	env.Namespace(t, ns, nil)
	env.Kubectl(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: analyze-kube}
spec:
  selector: {matchLabels: {app: nosuch}}
  action: DENY
  rules: [{from: [{source: {namespaces: ["evil"]}}]}]
`, "apply", "-f", "-")
	out, stderr, code := runWard(t, "analyze", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", ns)
	if code != 0 || !strings.Contains(out, "WA0201") || !strings.Contains(out, "AuthorizationPolicy analyze-kube/nobody") {
		t.Errorf("analyze --kube: exit %d, stderr %s, output:\n%s", code, stderr, out)
	}
}
