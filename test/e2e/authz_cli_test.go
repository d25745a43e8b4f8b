package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runAuthzCheck runs `ward authz check` and returns stdout and the exit
// status.
func runAuthzCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildWard(t), append([]string{"authz", "check"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		t.Logf("stderr: %s", stderr.String())
		if ee.ExitCode() == 1 {
			return string(out) + stderr.String(), 1
		}
		return string(out), ee.ExitCode()
	}
	t.Fatalf("ward authz check: %v", err)
	return "", 0
}

// TestAuthzCheckOnExamples answers questions about the shipped examples
// offline, with the deciding rule and exit status.
func TestAuthzCheckOnExamples(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	out, code := runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=reviews",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/productpage", "--method", "POST", "--path", "/reviews.Reviews/Get")
	if code != 0 || !strings.Contains(out, "ALLOW  allowed by ns[bookinfo]-policy[reviews-viewer]-rule[0]") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=reviews",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/ratings", "--method", "POST", "--path", "/reviews.Reviews/Get")
	if code != 2 || !strings.Contains(out, "no ALLOW policy matched (1 candidates)") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=ratings", "-o", "json",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/reviews", "--method", "POST", "--path", "/admin/users")
	var res struct {
		Allowed  bool `json:"allowed"`
		Decision struct {
			Rule  string `json:"rule"`
			Audit []struct {
				Rule string `json:"rule"`
			} `json:"audit"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if code != 2 || res.Allowed || res.Decision.Rule != "ns[istio-system]-policy[deny-admin]-rule[0]" ||
		len(res.Decision.Audit) != 1 || res.Decision.Audit[0].Rule != "ns[bookinfo]-policy[audit-ratings-writes]-rule[0]" {
		t.Errorf("exit %d, result %+v", code, res)
	}
}

func TestAuthzCheckJWTAndErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: app}
spec:
  rules:
  - when: [{key: "request.auth.claims[groups]", values: ["admins"]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  jwtRules: [{issuer: "https://i.example", jwksUri: "https://i.example/jwks"}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: app}
spec: {address: 10.0.0.5, labels: {app: api}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", `{"iss":"https://i.example","sub":"s","groups":["dev","admins"]}`)
	if code != 0 || !strings.Contains(out, "ns[app]-policy[admins]-rule[0]") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	// A token from an issuer the workload does not trust never reaches
	// authorization: jwt_authn answers 401.
	out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", `{"iss":"https://evil.example","sub":"s","groups":["admins"]}`)
	if code != 2 || !strings.Contains(out, `rejected by authentication: issuer "https://evil.example" is not trusted`) {
		t.Errorf("untrusted issuer: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--show-rego"); code != 2 ||
		!strings.Contains(out, "denied: no ALLOW policy matched (1 candidates)") ||
		!strings.Contains(out, "# ns[app]-policy[admins]-rule[0]") || !strings.Contains(out, "package ward.policy.p_") {
		t.Errorf("no JWT: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/nope"); code != 1 || !strings.Contains(out, "no WorkloadEntry app/nope") {
		t.Errorf("unknown workload: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", "{"); code != 1 {
		t.Errorf("bad claims: exit %d:\n%s", code, out)
	}
}

// TestAuthzCheckPorts judges a request on the protocol of the port it
// reaches (a TCP port is never judged as HTTP), defaults --port to the
// workload's only port and lists the ports when there are several.
func TestAuthzCheckPorts(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "p.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - to: [{operation: {methods: ["GET"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: app}
spec:
  hosts: [db.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: [web.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: app}
spec: {address: 10.0.0.6, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 10.0.0.7, labels: {app: web}}
`)
	// The only port is TCP: the ALLOW rule on methods is dropped (Istio's
	// TCP semantics), so even a "GET" is denied.
	out, code := runAuthzCheck(t, "--config", dir, "--to", "app/db-1", "--method", "GET")
	if code != 2 || !strings.Contains(out, "no ALLOW policy matched") {
		t.Errorf("TCP port judged as HTTP: exit %d:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", dir, "--to", "app/web-1")
	if code != 1 || !strings.Contains(out, "several ports (8080/HTTP, 9090/GRPC)") {
		t.Errorf("several ports: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/web-1", "--port", "9090"); code != 0 {
		t.Errorf("grpc port: exit %d:\n%s", code, out)
	}
}

func writeConfig(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
