package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/kube"
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

// TestAuditKubeIssued runs one `ward serve --kube` replica, enrols a
// workload agent with a pod-bound service-account token, and audits: from
// the ward-ca Secret alone the issued certificates are not listed (each
// replica keeps its records in memory, and the note says so); with
// --server the replica's records, scope "process", hold the agent's
// certificate.
func TestAuditKubeIssued(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	const ns = "audit-kube-ca"
	env.Namespace(t, ns, nil)
	env.ServiceAccount(t, ns, "web")
	// The control plane runs in a namespace of its own: the CA reserves
	// its namespace's identities, and serves .../ns/<cp>/sa/ward.
	cp := env.UniqueNamespace(t, "audit-kube-cp", nil)
	rep := startKubeReplica(t, env, cp, "audit-a")
	rep.waitServing(t)

	ctx := context.Background()
	pod, err := env.Clients.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Image: "web"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(env.Kubectl(t, "", "-n", ns, "create", "token", "web", "--audience", "ward-ca",
		"--bound-object-kind", "Pod", "--bound-object-name", "web-0", "--bound-object-uid", string(pod.UID)))
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: cp}.Load(ctx)
	if err != nil || st == nil {
		t.Fatalf("ward-ca secret: %+v, %v", st, err)
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "out")
	agentProc := startWard(t, "agent", "--ca-addr", rep.secureAddr, "--trust-domain", "cluster.local", "--ca-server-id", "spiffe://cluster.local/ns/"+cp+"/sa/ward",
		"--ca-root", write("root.pem", st.Roots[0].CertPEM), "--token-file", write("token", token),
		"--state", filepath.Join(dir, "agent"), "--output-dir", out, "--xds-addr", "127.0.0.1:15010", "--xds-insecure", // only written to the bootstrap
		"--name", "web-0", "--ip", "10.0.0.7", "--labels", "app=web")
	agentProc.waitLine(t, regexp.MustCompile(`msg="certificate installed" .*spiffe_id=spiffe://cluster.local/ns/audit-kube-ca/sa/web`), 30*time.Second)
	chain, err := os.ReadFile(filepath.Join(out, agent.FileCertChain))
	if err != nil {
		t.Fatal(err)
	}
	want := issuedJSON{SPIFFEID: "spiffe://cluster.local/ns/audit-kube-ca/sa/web", Serial: parseFirstCert(t, chain).SerialNumber.Text(16),
		Method: "k8s-jwt", Namespace: ns}

	type report struct {
		Certificates struct {
			Available     bool
			Issued        []issuedJSON
			IssuedSummary *struct{ Scope string }
			Note          string
		}
	}
	audit := func(args ...string) report {
		t.Helper()
		args = append([]string{"audit", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", cp, "-o", "json"}, args...)
		stdout, stderr, code := runWard(t, args...)
		if code != 0 {
			t.Fatalf("ward %v: exit %d: %s", args, code, stderr)
		}
		var r report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := audit()
	if c := r.Certificates; !c.Available || c.IssuedSummary != nil || len(c.Issued) != 0 || !strings.Contains(c.Note, "each replica keeps its own records") {
		t.Errorf("audit --kube (Secret only): certificates %+v, want roots and a note on per-replica records", c)
	}
	r = audit("--server", "http://"+rep.debugAddr)
	if c := r.Certificates; c.IssuedSummary == nil || c.IssuedSummary.Scope != "process" || !hasIssued(c.Issued, want) {
		t.Errorf("audit --kube --server: certificates %+v, want scope process and %+v (is /debug/ca/issued mounted in ward serve?)", c, want)
	}
}
