package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh/file"
)

var update = flag.Bool("update", false, "rewrite golden files")

var auditNow = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func examplesReport(t *testing.T) *Report {
	t.Helper()
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatalf("load examples: %v", err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("examples rejected objects: %v", res.Errs())
	}
	f, err := os.Open("testdata/decisions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ds, err := ReadDecisions(f, time.Time{}, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("read decisions: %v", err)
	}
	return Build(Input{Snapshot: res.Snapshot, Source: "examples", Decisions: ds, Now: auditNow})
}

func TestGoldenExamples(t *testing.T) {
	r := examplesReport(t)
	var buf bytes.Buffer
	if err := RenderJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "examples.golden.json")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	var got, exp any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(exp, got); d != "" {
		t.Errorf("audit of examples differs from %s (-want +got):\n%s", golden, d)
	}
}

// TestExamplesBehaviour pins the facts the golden file encodes, so a
// regenerated golden cannot silently lose them.
func TestExamplesBehaviour(t *testing.T) {
	r := examplesReport(t)
	port := func(ns, w string, p uint32) MTLSPort {
		for _, m := range r.MTLS {
			if m.Namespace == ns && m.Workload == w {
				for _, mp := range m.Ports {
					if mp.Port == p {
						return mp
					}
				}
			}
		}
		t.Fatalf("no port %s/%s:%d in %+v", ns, w, p, r.MTLS)
		return MTLSPort{}
	}
	if p := port("payments", "payments-1", 9091); p.Mode != "STRICT" || p.Plaintext || !strings.HasPrefix(p.From, "port-level payments/cards-strict") {
		t.Errorf("payments-1:9091 = %+v, want STRICT from the port-level setting", p)
	}
	if p := port("payments", "payments-1", 8080); p.Mode != "PERMISSIVE" || !p.Plaintext {
		t.Errorf("payments-1:8080 = %+v, want PERMISSIVE accepting plaintext", p)
	}
	if !hasFinding(r, "MTLS-NO-IDENTITY", "payments/payments-legacy") {
		t.Errorf("payments-legacy has no identity but no finding: %v", r.Findings)
	}
	if !hasFinding(r, "JWT-NOT-REQUIRED", "istio-system/ingressgateway-1") {
		t.Errorf("ingress gateway requires a token for only some hosts but no finding: %v", r.Findings)
	}
	var gw *JWTWorkload
	for i := range r.JWT {
		if r.JWT[i].Workload == "ingressgateway-1" {
			gw = &r.JWT[i]
		}
	}
	if gw == nil || gw.Required != "some" || len(gw.Issuers) != 1 || gw.Issuers[0] != "https://idp.example.com" {
		t.Errorf("ingress JWT = %+v, want issuer https://idp.example.com, token required by some rules", gw)
	}
	for _, n := range r.StrictReadiness {
		if n.Namespace == "bookinfo" && !n.Ready {
			t.Errorf("bookinfo is STRICT everywhere but not ready: %v", n.Blockers)
		}
		if n.Namespace == "payments" && n.Ready {
			t.Errorf("payments accepts plaintext but is ready")
		}
	}
	d := r.Decisions
	if d == nil || d.Total != 4 || d.Allowed != 2 || d.Denied != 2 || d.WouldDeny != 1 || d.Audited != 1 {
		t.Fatalf("decisions = %+v, want 4 in the period (2 allowed, 2 denied, 1 would-deny, 1 audited)", d)
	}
	if d.TopDeniedCallers[0] != (Count{"spiffe://cluster.local/ns/payments/sa/payments", 2}) {
		t.Errorf("top denied caller = %+v", d.TopDeniedCallers)
	}
	if r.Max() != High {
		t.Errorf("max severity = %q, want high", r.Max())
	}
}

func hasFinding(r *Report, code, object string) bool {
	for _, f := range r.Findings {
		if f.Code == code && f.Object == object {
			return len(f.Controls) > 0
		}
	}
	return false
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func TestCAInventory(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := ca.New(ca.Config{StateDir: dir, TrustDomain: "cluster.local", Clock: fixedClock{start}, RootTTL: 400 * 24 * time.Hour}); err != nil {
		t.Fatalf("create ca: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca", "ca.json"))
	st, err := LoadCA(dir, "cluster.local")
	if err != nil {
		t.Fatalf("load ca: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca", "ca.json"))
	if !bytes.Equal(before, after) {
		t.Error("auditing the ca state changed it")
	}
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	// 400-day root audited 380 days in: 20 days left, inside the 30-day threshold.
	r := Build(Input{Snapshot: res.Snapshot, CA: st, Now: start.Add(380 * 24 * time.Hour)})
	c := r.Certificates
	if !c.Available || c.Phase != ca.PhaseStable || len(c.Roots) != 1 || !c.Roots[0].Signing || !c.Roots[0].Expiring || c.Roots[0].ExpiresIn != "20d" {
		t.Fatalf("certificates = %+v", c)
	}
	if c.Note != "" || c.IssuedSummary == nil || c.IssuedSummary.Total != 0 || len(c.Issued) != 0 {
		t.Errorf("a CA that issued nothing has an empty issued list: %+v", c)
	}
	if !hasFinding(r, "CERT-EXPIRING", "root "+c.Roots[0].Subject+" (serial "+c.Roots[0].Serial+")") {
		t.Errorf("no CERT-EXPIRING finding: %v", r.Findings)
	}
	r = Build(Input{Snapshot: res.Snapshot, CA: st, Now: start})
	if r.Certificates.Roots[0].Expiring {
		t.Error("a fresh root is flagged as expiring")
	}
}

func TestLoadCAMissingStateDoesNotCreate(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCA(dir, "cluster.local"); err == nil {
		t.Fatal("want an error for a state dir without ca state")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("LoadCA wrote into the state dir: %v", left)
	}
}

func TestRenderFormats(t *testing.T) {
	r := examplesReport(t)
	for _, f := range []string{"table", "markdown", "html"} {
		var buf bytes.Buffer
		if err := Render(&buf, r, f); err != nil {
			t.Fatalf("render %s: %v", f, err)
		}
		out := buf.String()
		for _, want := range []string{"MTLS-NO-IDENTITY", "payments-legacy", "STRICT readiness", "PCI-DSS-4.2.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q", f, want)
			}
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, r, "html"); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("html is not self-contained: contains %q", bad)
		}
	}
	if strings.Count(html, "<svg") != 3 {
		t.Errorf("want 3 inline svg charts, got %d", strings.Count(html, "<svg"))
	}
	buf.Reset()
	if err := Render(&buf, r, "yaml"); err != nil || !strings.Contains(buf.String(), "schema: ward.audit/v1") || !strings.Contains(buf.String(), "code: MTLS-NO-IDENTITY") {
		t.Errorf("yaml: %v\n%.300s", err, buf.String())
	}
	if err := Render(&buf, r, "pdf"); err == nil {
		t.Error("unknown format accepted")
	}
}

// noKeys is a resolver that has no keys for any issuer.
type noKeys struct{}

func (noKeys) JWKS(string, string) (string, bool) { return "", false }

func TestJWKSHealthWithResolver(t *testing.T) {
	// The examples inline their IdP keys; add a rule whose keys must be
	// fetched, and audit with a resolver that has none.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../examples")); err != nil {
		t.Fatal(err)
	}
	remote := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: remote-jwt, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: https://remote.example.com
    jwksUri: https://remote.example.com/jwks.json
`
	if err := os.WriteFile(filepath.Join(dir, "istio-system", "remote-jwt.yaml"), []byte(remote), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Errs())
	}
	r := Build(Input{Snapshot: res.Snapshot, Keys: noKeys{}, Now: auditNow})
	status := map[string]string{}
	for _, w := range r.JWT {
		for _, k := range w.JWKS {
			status[k.Issuer] = k.Status
		}
	}
	if status["https://remote.example.com"] != "unavailable" || status["https://idp.example.com"] != "ok (inline)" {
		t.Fatalf("jwks health = %v, want the remote issuer unavailable and the inline one ok", status)
	}
	if !hasFinding(r, "AUTHN-JWKSUnavailable", "RequestAuthentication istio-system/remote-jwt") {
		t.Errorf("no JWKSUnavailable finding with a resolver that has no keys: %v", r.Findings)
	}
	if hasFinding(r, "AUTHN-JWKSUnavailable", "RequestAuthentication istio-system/ingress-jwt") {
		t.Error("inline keys reported unavailable")
	}
}

func TestIgnoredPeerAuthenticationAndOpenWorkload(t *testing.T) {
	dir := t.TempDir()
	yaml := `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 127.0.0.2, serviceAccount: web, labels: {app: web, security.istio.io/tlsMode: istio}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: app, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: app, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: any, namespace: app}
spec:
  selector: {matchLabels: {app: nosuch}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: wild, namespace: app, annotations: {istio.io/dry-run: "true"}}
spec:
  rules: [{from: [{source: {principals: ["*"]}}]}]
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Errs())
	}
	r := Build(Input{Snapshot: res.Snapshot, Now: auditNow})
	if len(r.MTLS) != 1 || r.MTLS[0].Mode != "STRICT" || len(r.MTLS[0].Ignored) != 1 || !strings.Contains(r.MTLS[0].Ignored[0], "app/b") {
		t.Errorf("mtls = %+v, want STRICT from app/a with app/b ignored", r.MTLS)
	}
	for _, code := range []string{"AUTHZ-NO-ALLOW-POLICY", "AUTHZ-SELECTS-NOTHING", "AUTHZ-ALLOW-ALL", "AUTHN-ShadowedByOlderPolicy", "AUTHZ-WILDCARD-PRINCIPAL", "AUTHZ-DRY-RUN-PENDING"} {
		found := false
		for _, f := range r.Findings {
			found = found || f.Code == code
		}
		if !found {
			t.Errorf("no %s finding: %+v", code, r.Findings)
		}
	}
}
