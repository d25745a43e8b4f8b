package ca

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// signN signs n certificates for ns/sa with ttl and returns their serials
// in issuance order.
func signN(t *testing.T, c *CA, n int, id string, ttl time.Duration) []string {
	t.Helper()
	var serials []string
	for range n {
		iss, err := c.Sign(Params{ID: mustID(t, id), PublicKey: ecKey(t).Public(), TTL: ttl, Method: MethodMTLS})
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, iss.Leaf.SerialNumber.Text(16))
	}
	return serials
}

// serialsOf returns the records' serials, sorted (records with equal
// expiry are ordered by serial, which is random).
func serialsOf(recs []IssuedCert) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Serial)
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// fileLines reads the issuance log.
func fileLines(t *testing.T, c *CA) [][]byte {
	t.Helper()
	b, err := os.ReadFile(IssuedLogPath(c.cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func TestIssuedRecordedOnSign(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := newTestCA(t, clk, nil)
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/shop/sa/cart"), PublicKey: ecKey(t).Public(), TTL: 2 * time.Hour, Method: MethodJoinToken})
	if err != nil {
		t.Fatal(err)
	}
	root := c.Roots()[0].SerialNumber.Text(16)
	want := []IssuedCert{{
		Serial: iss.Leaf.SerialNumber.Text(16), SPIFFEID: "spiffe://example.org/ns/shop/sa/cart",
		NotBefore: iss.Leaf.NotBefore, NotAfter: iss.Leaf.NotAfter, IssuedAt: t0,
		Signer: root, Root: root, Method: MethodJoinToken,
	}}
	if diff := cmp.Diff(want, c.Issued(t0)); diff != "" {
		t.Errorf("Issued (-want +got):\n%s", diff)
	}
	if c.IssuedScope() != ScopeState {
		t.Errorf("scope %q, want %q for file-mode state", c.IssuedScope(), ScopeState)
	}

	lines := fileLines(t, c)
	if len(lines) != 1 {
		t.Fatalf("file has %d lines, want 1:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
	var fields map[string]any
	if err := json.Unmarshal(lines[0], &fields); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	if diff := cmp.Diff([]string{"issuedAt", "method", "notAfter", "notBefore", "root", "serial", "signer", "spiffeId"}, keys); diff != "" {
		t.Errorf("record fields (-want +got):\n%s", diff)
	}
	if bytes.Contains(lines[0], []byte("BEGIN")) {
		t.Errorf("record holds PEM: %s", lines[0])
	}
	fi, err := os.Stat(IssuedLogPath(c.cfg.StateDir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("issued.jsonl mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// The hand-written line encoder must agree with encoding/json.
func TestAppendRecordMatchesJSON(t *testing.T) {
	for _, r := range []IssuedCert{
		{Serial: "1f", SPIFFEID: "spiffe://example.org/ns/a/sa/b", NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0.Add(123456789), Signer: "2", Root: "3", Method: MethodMTLS},
		{Serial: "x\"<y>&\\", SPIFFEID: "spiffe://é/\n", NotBefore: t0.In(time.FixedZone("x", 3600)), Signer: "s", Root: "r"},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRecord(nil, r); string(got) != string(want)+"\n" {
			t.Errorf("appendRecord:\n got %s\nwant %s", got, want)
		}
	}
}

func TestIssuedSurvivesRestart(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	c := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir })
	serials := signN(t, c, 3, "spiffe://example.org/ns/shop/sa/cart", time.Hour)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir })
	if diff := cmp.Diff(sorted(serials), serialsOf(c2.Issued(t0))); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
	more := signN(t, c2, 1, "spiffe://example.org/ns/shop/sa/cart", 2*time.Hour)
	got, err := ReadIssuedLog(IssuedLogPath(dir), t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(append(serials, more...)), serialsOf(got)); diff != "" {
		t.Errorf("ReadIssuedLog (-want +got):\n%s", diff)
	}
}

func TestIssuedExpiredDropped(t *testing.T) {
	clk := &fakeClock{now: t0}
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	c := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir; cfg.Metrics = reg })
	short := signN(t, c, 2, "spiffe://example.org/ns/a/sa/short", time.Hour)
	long := signN(t, c, 1, "spiffe://example.org/ns/a/sa/long", 48*time.Hour)
	clk.Advance(2 * time.Hour)
	if diff := cmp.Diff(long, serialsOf(c.Issued(clk.Now()))); diff != "" {
		t.Errorf("Issued after 2h (-want +got):\n%s", diff)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	reg2 := prometheus.NewRegistry()
	c2 := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir; cfg.Metrics = reg2 })
	if got := counterValue(c2.cfg.IssuanceLog.(*FileLog).set.dropped.WithLabelValues(dropExpired)); got != 2 {
		t.Errorf("dropped{expired} at start = %v, want 2", got)
	}
	if n := len(fileLines(t, c2)); n != 3 {
		t.Errorf("a CA that has not signed rewrote the log: %d lines, want the 3 it found", n)
	}
	signN(t, c2, 1, "spiffe://example.org/ns/a/sa/long", 48*time.Hour)
	lines := fileLines(t, c2)
	for _, s := range short {
		if bytes.Contains(bytes.Join(lines, nil), []byte(`"serial":"`+s+`"`)) {
			t.Errorf("expired serial %s still in the file after the first record", s)
		}
	}
	if len(lines) != 2 {
		t.Errorf("file has %d lines, want 2 (long + next)", len(lines))
	}
	if got := gauge(t, reg2, "ward_ca_issued_certificates"); got != 2 {
		t.Errorf("ward_ca_issued_certificates = %v, want 2", got)
	}
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestIssuedBound(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	c := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir; cfg.MaxIssuedRecords = 10; cfg.Metrics = reg })
	serials := signN(t, c, 37, "spiffe://example.org/ns/a/sa/b", time.Hour)
	if diff := cmp.Diff(sorted(serials[27:]), serialsOf(c.Issued(t0))); diff != "" {
		t.Errorf("Issued keeps the newest 10 (-want +got):\n%s", diff)
	}
	if n := len(fileLines(t, c)); n > 10+10/4+1 {
		t.Errorf("file has %d lines, want at most %d", n, 10+10/4+1)
	}
	log := c.cfg.IssuanceLog.(*FileLog)
	if got := counterValue(log.set.dropped.WithLabelValues(dropLimit)); got < 1 {
		t.Errorf("dropped{limit} = %v, want > 0", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir; cfg.MaxIssuedRecords = 10 })
	if diff := cmp.Diff(sorted(serials[27:]), serialsOf(c2.Issued(t0))); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

func TestIssuedConcurrentSigning(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := newTestCA(t, clk, func(cfg *Config) { cfg.MaxIssuedRecords = 50 })
	const workers, each = 8, 20
	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := signN(t, c, each, fmt.Sprintf("spiffe://example.org/ns/n%d/sa/s", w), time.Hour)
			mu.Lock()
			all = append(all, s...)
			mu.Unlock()
		})
	}
	wg.Wait()
	got := c.Issued(t0)
	if len(got) != 50 {
		t.Fatalf("Issued has %d records, want the bound 50", len(got))
	}
	for _, r := range got {
		if !slices.Contains(all, r.Serial) {
			t.Errorf("record %s was never issued", r.Serial)
		}
	}
	onDisk, err := readRecordsOnDisk(c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(serialsOf(got), serialsOf(onDisk)); diff != "" {
		t.Errorf("file and memory disagree (-memory +file):\n%s", diff)
	}
}

func readRecordsOnDisk(c *CA) ([]IssuedCert, error) {
	l := c.cfg.IssuanceLog.(*FileLog)
	recs, _, err := readRecords(l.path) // file order, unlike ReadIssuedLog
	if err != nil {
		return nil, err
	}
	return newestUnexpired(recs, t0, l.set.max), nil
}

func TestIssuedTornLine(t *testing.T) {
	dir := t.TempDir()
	path := IssuedLogPath(dir)
	good := IssuedCert{Serial: "a1", SPIFFEID: "spiffe://example.org/ns/a/sa/b", NotAfter: t0.Add(time.Hour), Signer: "1", Root: "1"}
	b := appendRecord(nil, good)
	b = append(b, `{"serial":"b2","spiffeId":"spiffe://exa`...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIssuedLog(path, t0)
	if err != nil || len(got) != 1 || got[0].Serial != "a1" {
		t.Fatalf("ReadIssuedLog = %v, %v; want the one good record", got, err)
	}
	l, err := OpenFileLog(path, LogConfig{Clock: &fakeClock{now: t0}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(IssuedCert{Serial: "c3", NotAfter: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err = ReadIssuedLog(path, t0)
	if err != nil || !slices.Equal(serialsOf(got), []string{"a1", "c3"}) || len(fileLinesAt(t, path)) != 2 {
		t.Fatalf("after a record, ReadIssuedLog = %v, %v; want a1, c3 (torn line gone)", serialsOf(got), err)
	}
	if _, err := ReadIssuedLog(filepath.Join(dir, "missing"), t0); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
}

func fileLinesAt(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// memStore is a Store outside the state dir (as the Kubernetes Secret is).
type memStore struct {
	mu sync.Mutex
	s  *State
}

func (m *memStore) Load(context.Context) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s, nil
}

func (m *memStore) Save(_ context.Context, s *State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = s
	return nil
}

func TestIssuedMemoryLogWithExternalStore(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	c := newTestCA(t, clk, func(cfg *Config) { cfg.StateDir = dir; cfg.Store = &memStore{} })
	serials := signN(t, c, 2, "spiffe://example.org/ns/a/sa/b", time.Hour)
	if diff := cmp.Diff(sorted(serials), serialsOf(c.Issued(t0))); diff != "" {
		t.Errorf("Issued (-want +got):\n%s", diff)
	}
	if c.IssuedScope() != ScopeProcess {
		t.Errorf("scope %q, want %q", c.IssuedScope(), ScopeProcess)
	}
	if _, err := os.Stat(IssuedLogPath(dir)); !os.IsNotExist(err) {
		t.Errorf("a CA on an external store wrote %s (%v)", IssuedLogPath(dir), err)
	}
}

func TestIssuedDebugHandler(t *testing.T) {
	clk := &fakeClock{now: t0}
	reg := prometheus.NewRegistry()
	c := newTestCA(t, clk, func(cfg *Config) { cfg.Metrics = reg })
	signN(t, c, 2, "spiffe://example.org/ns/b/sa/x", 3*time.Hour)
	signN(t, c, 1, "spiffe://example.org/ns/a/sa/y", time.Hour)
	rec := httptest.NewRecorder()
	c.IssuedHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/ca/issued", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var got IssuedReport
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("/debug/ca/issued: %v: %s", err, rec.Body)
	}
	if got.Scope != ScopeState || got.Count != 3 || len(got.Certificates) != 3 || !got.GeneratedAt.Equal(t0) {
		t.Fatalf("/debug/ca/issued = %+v", got)
	}
	if got.Certificates[0].SPIFFEID != "spiffe://example.org/ns/a/sa/y" {
		t.Errorf("not ordered by expiry: first is %s", got.Certificates[0].SPIFFEID)
	}
	if v := gauge(t, reg, "ward_ca_issued_certificates"); v != 3 {
		t.Errorf("ward_ca_issued_certificates = %v, want 3", v)
	}
	clk.Advance(2 * time.Hour)
	if v := gauge(t, reg, "ward_ca_issued_certificates"); v != 2 {
		t.Errorf("after 2h ward_ca_issued_certificates = %v, want 2", v)
	}
}
