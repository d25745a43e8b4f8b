package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/agent"
)

// runWard runs the ward binary and returns stdout, stderr and the exit
// status.
func runWard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(buildWard(t), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("ward %v: %v", args, err)
	return "", "", 0
}

func examplesDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAuditCLIFormats runs `ward audit` on the examples in every format.
func TestAuditCLIFormats(t *testing.T) {
	ex := examplesDir(t)
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"table", []string{"== mTLS coverage ==", "payments-legacy", "MTLS-NO-IDENTITY", "port-level payments/cards-strict"}},
		{"markdown", []string{"# Ward audit report", "| severity | code |", "MTLS-NO-IDENTITY"}},
		{"html", []string{"<!DOCTYPE html>", "<svg", "MTLS-NO-IDENTITY"}},
	} {
		out, stderr, code := runWard(t, "audit", "--config", ex, "-o", tc.format)
		if code != 0 {
			t.Fatalf("-o %s: exit %d: %s", tc.format, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("-o %s: output lacks %q", tc.format, w)
			}
		}
	}
}

// TestAuditCLIJSONAndFailOn checks the JSON schema's key fields and the
// CI gate's exit status.
func TestAuditCLIJSONAndFailOn(t *testing.T) {
	ex := examplesDir(t)
	log := filepath.Join(t.TempDir(), "decisions.log")
	line := `{"decision_id":"x","time":"2026-11-20T10:00:00Z","workload":"bookinfo/ratings-v1","source_principal":"spiffe://cluster.local/ns/payments/sa/payments","path":"/admin","allowed":false,"reason":"deny","explanation":"","dry_run":false,"audit":false,"latency_us":1}`
	if err := os.WriteFile(log, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log1 := log + ".1" // a rotated file: read too, the time bound drops its entry
	if err := os.WriteFile(log1, []byte(strings.Replace(line, "2026-11-20", "2025-01-01", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runWard(t, "audit", "--config", ex, "--decisions", log+","+log1, "--since", "2026-01-01T00:00:00Z", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Schema    string                  `json:"schema"`
		Summary   struct{ Workloads int } `json:"summary"`
		Decisions struct{ Denied int }    `json:"decisions"`
		Findings  []struct {
			Code, Severity string
			Controls       []string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if r.Schema != "ward.audit/v1" || r.Summary.Workloads != 8 || r.Decisions.Denied != 1 || len(r.Findings) == 0 {
		t.Errorf("json report = %+v", r)
	}

	_, stderr, code = runWard(t, "audit", "--config", ex, "--fail-on", "high", "-o", "json")
	if code != 3 || !strings.Contains(stderr, "findings at or above high") {
		t.Errorf("--fail-on high: exit %d, stderr %q; want 3 (examples have a workload without identity)", code, stderr)
	}
	bookinfo := filepath.Join(t.TempDir(), "bookinfo")
	if err := os.CopyFS(bookinfo, os.DirFS(filepath.Join(ex, "bookinfo"))); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runWard(t, "audit", "--config", bookinfo, "--fail-on", "high")
	if code != 0 {
		t.Errorf("--fail-on high on bookinfo alone (STRICT, all covered): exit %d: %s", code, stderr)
	}
	_, stderr, code = runWard(t, "audit", "--config", ex, "--fail-on", "severe")
	if code != 1 || !strings.Contains(stderr, "--fail-on") {
		t.Errorf("bad --fail-on: exit %d, stderr %q", code, stderr)
	}
	_, _, code = runWard(t, "audit", "--config", ex, "-o", "pdf")
	if code != 1 {
		t.Errorf("-o pdf: exit %d, want 1", code)
	}
}

// TestAuditAgainstServe audits the examples with the live CA and JWKS
// state of a running `ward serve`: the root is inventoried and an issuer
// whose keys cannot be fetched (a closed loopback port) is reported
// unavailable.
func TestAuditAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.CopyFS(cfg, os.DirFS(examplesDir(t))); err != nil {
		t.Fatal(err)
	}
	unreachable := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: unreachable-idp, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: https://issuer.test
    jwksUri: https://127.0.0.1:1/jwks.json
`
	if err := os.WriteFile(filepath.Join(cfg, "istio-system", "unreachable-idp.yaml"), []byte(unreachable), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	p := startWard(t, "serve", "--config", cfg, "--state", state,
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+) secure_addr=(\S+)`), time.Minute)
	addr, xdsAddr, secureAddr := m[1], m[2], m[3]
	productpage := enrolAgent(t, dir, state, secureAddr, xdsAddr)

	out, stderr, code := runWard(t, "audit", "--config", cfg, "--server", "http://"+addr, "-o", "json")
	if code != 0 {
		t.Fatalf("audit --server: exit %d: %s", code, stderr)
	}
	var r struct {
		Certificates struct {
			Available     bool
			Phase         string
			Roots         []struct{ Signing bool }
			Issued        []issuedJSON
			IssuedSummary *struct {
				Scope        string
				Total        int
				PerNamespace []struct {
					Namespace    string
					Certificates int
				}
			}
			Note string
		}
		JWT []struct {
			JWKS []struct{ Issuer, Status string }
		}
		Findings []struct{ Code, Object string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Certificates.Available || r.Certificates.Phase != "stable" || len(r.Certificates.Roots) != 1 || !r.Certificates.Roots[0].Signing {
		t.Errorf("certificates = %+v, want the server's one signing root, phase stable", r.Certificates)
	}
	if s := r.Certificates.IssuedSummary; s == nil {
		t.Errorf("audit --server lists no issued certificates (note %q): is /debug/ca/issued mounted in ward serve?", r.Certificates.Note)
	} else if s.Scope != "state" || s.Total < 1 {
		t.Errorf("issued summary = %+v, want scope state and the enrolled workload", s)
	} else if !hasIssued(r.Certificates.Issued, productpage) {
		t.Errorf("issued = %+v, want the agent's certificate %+v", r.Certificates.Issued, productpage)
	}
	status := map[string]string{}
	for _, w := range r.JWT {
		for _, k := range w.JWKS {
			status[k.Issuer] = k.Status
		}
	}
	if !strings.HasPrefix(status["https://issuer.test"], "unavailable") || strings.HasPrefix(status["https://idp.example.com"], "unavailable") {
		t.Errorf("jwks health = %v, want the unreachable issuer unavailable and the inline one not", status)
	}
	found := false
	for _, f := range r.Findings {
		found = found || (f.Code == "JWT-JWKS-UNAVAILABLE" && f.Object == "RequestAuthentication istio-system/unreachable-idp")
	}
	if !found {
		t.Errorf("no JWT-JWKS-UNAVAILABLE finding: %+v", r.Findings)
	}

	// The same CA read from the state dir, read-only, with the issuance
	// records the server wrote to issued.jsonl.
	out, stderr, code = runWard(t, "audit", "--config", cfg, "--ca-state", state, "-o", "markdown")
	if code != 0 || !strings.Contains(out, "root (signing)") || !strings.Contains(out, productpage.Serial) {
		t.Fatalf("audit --ca-state: exit %d, %s; want the root and the agent's certificate %s:\n%s", code, stderr, productpage.Serial, out)
	}
	if !strings.Contains(out, "## Issued certificates by namespace") || !strings.Contains(out, "| bookinfo | 1 | 1 | 1 |") {
		t.Errorf("audit --ca-state: no per-namespace count for bookinfo:\n%s", out)
	}
}

// issuedJSON is one entry of certificates.issued.
type issuedJSON struct {
	SPIFFEID, Serial, Method string
	Namespace                string
	Expiring                 bool `json:"expiringSoon"`
}

func hasIssued(list []issuedJSON, want issuedJSON) bool {
	for _, x := range list {
		if x.Serial == want.Serial && x.SPIFFEID == want.SPIFFEID && x.Method == want.Method && x.Namespace == want.Namespace {
			return true
		}
	}
	return false
}

// enrolAgent runs `ward agent` for bookinfo/productpage with a join token
// from the served state dir and returns its certificate as the audit
// should list it.
func enrolAgent(t *testing.T, dir, state, secureAddr, xdsAddr string) issuedJSON {
	t.Helper()
	token := strings.TrimSpace(wardOut(t, "ca", "token", "create", "--state", state, "--ns", "bookinfo", "--sa", "productpage", "--ttl", "10m"))
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "agent-out")
	p := startWard(t, "agent", "--ca-addr", secureAddr, "--trust-domain", "cluster.local",
		"--ca-root", write("root.pem", wardOut(t, "ca", "bundle", "--state", state)), "--join-token-file", write("token", token),
		"--state", filepath.Join(dir, "agent"), "--output-dir", out, "--xds-addr", xdsAddr, "--xds-insecure",
		"--name", "productpage-0", "--ip", "10.0.0.9", "--labels", "app=productpage")
	p.waitLine(t, regexp.MustCompile(`msg="certificate installed" .*spiffe_id=spiffe://cluster.local/ns/bookinfo/sa/productpage`), 30*time.Second)
	chain, err := os.ReadFile(filepath.Join(out, agent.FileCertChain))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseFirstCert(t, chain)
	return issuedJSON{SPIFFEID: "spiffe://cluster.local/ns/bookinfo/sa/productpage", Serial: leaf.SerialNumber.Text(16), Method: "join-token", Namespace: "bookinfo"}
}
