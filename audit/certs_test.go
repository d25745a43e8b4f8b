package audit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh/file"
)

// moveClock is a clock the test moves.
type moveClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *moveClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *moveClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func sign(t *testing.T, c *ca.CA, id string, ttl time.Duration) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Sign(ca.Params{ID: spiffeid.RequireFromString(id), PublicKey: k.Public(), TTL: ttl, Method: ca.MethodJoinToken})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Leaf.SerialNumber.Text(16)
}

const (
	idProductpage = "spiffe://cluster.local/ns/bookinfo/sa/productpage"
	idRatings     = "spiffe://cluster.local/ns/bookinfo/sa/ratings"
	idGone        = "spiffe://cluster.local/ns/gone/sa/old"
)

// issuedState is a file-mode CA state with issuance records, audited at
// start+20h:
//   - productpage: one 24h certificate from start, 83% through its life
//     and not renewed → finding;
//   - ratings: the same, renewed at start+12h → no finding;
//   - gone/old: not renewed, but no workload uses it → no finding;
//   - one 1h certificate from start, expired → not listed.
func issuedState(t *testing.T) (dir string, start time.Time, serials map[string]string) {
	t.Helper()
	dir = t.TempDir()
	start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &moveClock{t: start}
	c, err := ca.New(ca.Config{StateDir: dir, TrustDomain: "cluster.local", Clock: clk})
	if err != nil {
		t.Fatalf("create ca: %v", err)
	}
	serials = map[string]string{
		"productpage": sign(t, c, idProductpage, 24*time.Hour),
		"ratings-old": sign(t, c, idRatings, 24*time.Hour),
		"gone":        sign(t, c, idGone, 24*time.Hour),
		"expired":     sign(t, c, idRatings, time.Hour),
	}
	clk.set(start.Add(12 * time.Hour))
	serials["ratings"] = sign(t, c, idRatings, 24*time.Hour)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, start, serials
}

func TestIssuedInventoryFromCAState(t *testing.T) {
	dir, start, serials := issuedState(t)
	logBefore, err := os.ReadFile(ca.IssuedLogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	st, err := LoadCA(dir, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if logAfter, _ := os.ReadFile(ca.IssuedLogPath(dir)); !bytes.Equal(logBefore, logAfter) {
		t.Error("auditing changed issued.jsonl")
	}
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(20 * time.Hour)
	r := Build(Input{Snapshot: res.Snapshot, CA: st, Now: now})
	c := r.Certificates
	if c.Note != "" {
		t.Errorf("note %q, want none when records were read", c.Note)
	}
	var got []string
	for _, x := range c.Issued {
		got = append(got, fmt.Sprintf("%s %s %s %v %s", x.SPIFFEID, x.Serial, x.ExpiresIn, x.Expiring, x.Method))
	}
	want := []string{
		idProductpage + " " + serials["productpage"] + " 4h0m true join-token",
		idRatings + " " + serials["ratings-old"] + " 4h0m true join-token",
		idGone + " " + serials["gone"] + " 4h0m true join-token",
		idRatings + " " + serials["ratings"] + " 16h0m true join-token",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issued (-want +got):\n%s", diff)
	}
	wantSum := &IssuedSummary{Scope: ca.ScopeState, Total: 4, Identities: 3, ExpiringSoon: 4, PerNamespace: []NamespaceCerts{
		{Namespace: "bookinfo", Certificates: 3, Identities: 2, ExpiringSoon: 3},
		{Namespace: "gone", Certificates: 1, Identities: 1, ExpiringSoon: 1},
	}}
	if diff := cmp.Diff(wantSum, c.IssuedSummary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	var certFindings []string
	for _, f := range r.Findings {
		if f.Category == "certificates" {
			certFindings = append(certFindings, f.Code+" "+f.Object)
		}
	}
	wantF := []string{"CERT-EXPIRING workload identity " + idProductpage + " (serial " + serials["productpage"] + ")"}
	if diff := cmp.Diff(wantF, certFindings); diff != "" {
		t.Errorf("certificate findings (-want +got):\n%s", diff)
	}

	// Right after issuance nothing is overdue.
	r = Build(Input{Snapshot: res.Snapshot, CA: st, Now: start.Add(13 * time.Hour)})
	for _, f := range r.Findings {
		if f.Category == "certificates" {
			t.Errorf("finding on certificates renewed on schedule: %+v", f)
		}
	}
}

func TestIssuedGroupedFinding(t *testing.T) {
	now := time.Date(2026, 1, 1, 20, 0, 0, 0, time.UTC)
	var mtls []MTLSWorkload
	var recs []ca.IssuedCert
	for i := range 15 {
		id := fmt.Sprintf("spiffe://cluster.local/ns/n/sa/s%02d", i)
		mtls = append(mtls, MTLSWorkload{Identity: id, HasIdentity: true})
		recs = append(recs, ca.IssuedCert{Serial: fmt.Sprint(i), SPIFFEID: id, NotBefore: now.Add(-20 * time.Hour), NotAfter: now.Add(4*time.Hour + time.Duration(i)*time.Minute)})
	}
	b := &builder{in: Input{Now: now, ExpiryThreshold: DefaultExpiryThreshold, CA: &ca.Status{Issued: &ca.IssuedReport{Certificates: recs}}}, r: &Report{MTLS: mtls}}
	b.certs()
	if len(b.r.Findings) != maxIdentityFindings+1 {
		t.Fatalf("%d findings, want %d individual + 1 grouped", len(b.r.Findings), maxIdentityFindings)
	}
	last := b.r.Findings[maxIdentityFindings]
	if !strings.HasPrefix(last.Object, "5 more workload identities (spiffe://cluster.local/ns/n/sa/s10,") {
		t.Errorf("grouped finding object %q", last.Object)
	}
}

func TestIssuedInventoryFromServer(t *testing.T) {
	dir, start, serials := issuedState(t)
	clk := &moveClock{t: start.Add(20 * time.Hour)}
	c, err := ca.New(ca.Config{StateDir: dir, TrustDomain: "cluster.local", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /debug/ca", c.DebugHandler())
	mux.Handle("GET /debug/ca/issued", c.IssuedHandler())
	mux.HandleFunc("GET /debug/jwks", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "[]") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	st, err := FetchServer(t.Context(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if st.CA.Issued == nil || st.CA.Issued.Scope != ca.ScopeState || st.CA.Issued.Count != 4 {
		t.Fatalf("fetched issued = %+v", st.CA.Issued)
	}
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	r := Build(Input{Snapshot: res.Snapshot, CA: st.CA, Now: clk.Now()})
	if r.Certificates.IssuedSummary == nil || r.Certificates.IssuedSummary.Total != 4 {
		t.Fatalf("summary = %+v", r.Certificates.IssuedSummary)
	}
	if !hasFinding(r, "CERT-EXPIRING", "workload identity "+idProductpage+" (serial "+serials["productpage"]+")") {
		t.Errorf("no finding for productpage: %v", r.Findings)
	}

	// An older server without /debug/ca/issued: roots only, with a note.
	old := http.NewServeMux()
	old.Handle("GET /debug/ca", c.DebugHandler())
	old.HandleFunc("GET /debug/jwks", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "[]") })
	oldSrv := httptest.NewServer(old)
	defer oldSrv.Close()
	st, err = FetchServer(t.Context(), oldSrv.Client(), oldSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r = Build(Input{Snapshot: res.Snapshot, CA: st.CA, Now: clk.Now()})
	if r.Certificates.IssuedSummary != nil || !strings.Contains(r.Certificates.Note, "no issuance records") {
		t.Errorf("without /debug/ca/issued: summary %+v, note %q", r.Certificates.IssuedSummary, r.Certificates.Note)
	}
}

func TestIssuedRenderingIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []ca.IssuedCert
	for i := range 3000 {
		recs = append(recs, ca.IssuedCert{Serial: fmt.Sprintf("%x", i), SPIFFEID: fmt.Sprintf("spiffe://cluster.local/ns/ns%d/sa/s%d", i%7, i),
			NotBefore: now, NotAfter: now.Add(time.Duration(24*60-i%600) * time.Minute)})
	}
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	r := Build(Input{Snapshot: res.Snapshot, CA: &ca.Status{Issued: &ca.IssuedReport{Scope: ca.ScopeProcess, Certificates: recs}}, Now: now})
	for _, f := range []string{"table", "markdown", "html"} {
		var buf bytes.Buffer
		if err := Render(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if n := strings.Count(out, "spiffe://cluster.local/ns/ns"); n != maxIssuedRows {
			t.Errorf("%s lists %d issued certificates, want the soonest %d", f, n, maxIssuedRows)
		}
		if !strings.Contains(out, "3000 unexpired, 3000 identities") || !strings.Contains(out, "scope process") {
			t.Errorf("%s lacks the issued summary", f)
		}
	}
	var buf bytes.Buffer
	if err := RenderJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Certificates.Issued) != 3000 || back.Certificates.Issued[0].NotAfter.After(back.Certificates.Issued[1].NotAfter) {
		t.Errorf("JSON lists %d issued certificates (want all 3000, soonest first)", len(back.Certificates.Issued))
	}
}

// TestGoldenIssuedInventory pins the certificates section and its
// findings for a fixed CA status with issuance records (the examples'
// golden file has no CA).
func TestGoldenIssuedInventory(t *testing.T) {
	now := time.Date(2026, 1, 1, 20, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	root := ca.CertStatus{Subject: "CN=Ward Root CA,O=cluster.local", Serial: "r1", NotBefore: now.Add(-300 * day), NotAfter: now.Add(60 * day)}
	rec := func(serial, id string, issuedAgo, ttl time.Duration, method string) ca.IssuedCert {
		nb := now.Add(-issuedAgo)
		return ca.IssuedCert{Serial: serial, SPIFFEID: id, NotBefore: nb, NotAfter: nb.Add(ttl), IssuedAt: nb, Signer: "r1", Root: "r1", Method: method}
	}
	st := &ca.Status{TrustDomain: "cluster.local", Mode: "self-signed", Phase: ca.PhaseStable, Signer: root,
		Roots: []ca.RootStatus{{CertStatus: root, Signing: true}},
		Issued: &ca.IssuedReport{Scope: ca.ScopeState, Certificates: []ca.IssuedCert{
			rec("a1", idProductpage, 20*time.Hour, day, ca.MethodJoinToken),
			rec("a2", idRatings, 8*time.Hour, day, ca.MethodMTLS),
			rec("a3", idGone, 20*time.Hour, day, ca.MethodK8sJWT),
			rec("a4", "spiffe://cluster.local/ns/ward-system/sa/ward", time.Hour, day, ca.MethodControlPlane),
			rec("a5", "spiffe://cluster.local/ns/payments/sa/payments", 10*day, 90*day, ca.MethodK8sJWT),
			rec("x0", idRatings, 30*time.Hour, day, ca.MethodMTLS), // expired
		}}}
	res, err := file.Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	r := Build(Input{Snapshot: res.Snapshot, CA: st, Now: now})
	var certFindings []Finding
	for _, f := range r.Findings {
		if f.Category == "certificates" {
			certFindings = append(certFindings, f)
		}
	}
	got, err := json.MarshalIndent(struct {
		Certificates Certificates `json:"certificates"`
		Findings     []Finding    `json:"findings"`
	}{r.Certificates, certFindings}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "issued.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if d := cmp.Diff(strings.TrimSpace(string(want)), string(got)); d != "" {
		t.Errorf("issued inventory differs from %s (-want +got):\n%s", golden, d)
	}
}
