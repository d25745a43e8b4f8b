package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/prometheus/client_golang/prometheus"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
)

// fakeClock is advanced by the test; every After call is reported on
// sleeps so the test knows the Run loop finished a round.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	sleeps  chan time.Duration
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), sleeps: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	}
	c.mu.Unlock()
	c.sleeps <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitSleep returns the next positive sleep the Run loop starts.
func (c *fakeClock) waitSleep(t *testing.T) time.Duration {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case d := <-c.sleeps:
			if d > 0 {
				return d
			}
		case <-deadline:
			t.Fatal("the resolver loop did not go back to sleep within 10s")
		}
	}
}

// idp is a local HTTPS OIDC provider whose key endpoint can be switched.
type idp struct {
	srv           *httptest.Server
	mode          atomic.Value // string: down, good, rotated, malformed
	good, rotated string
	hits          atomic.Int32
}

func newIDP(t *testing.T, issuerOverride string) *idp {
	t.Helper()
	p := &idp{good: authntest.PublicJWKS(t, authntest.Key(t, "rsa")), rotated: authntest.PublicJWKS(t, authntest.Key(t, "rsa-rotated"))}
	p.mode.Store("down")
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		iss := p.srv.URL
		if issuerOverride != "" {
			iss = issuerOverride
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": p.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		p.hits.Add(1)
		switch p.mode.Load().(string) {
		case "down":
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case "good":
			_, _ = w.Write([]byte(p.good))
		case "rotated":
			_, _ = w.Write([]byte(p.rotated))
		default:
			_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
		}
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func snapWith(rules ...*security.JWTRule) *mesh.Snapshot {
	return mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{{
		Meta: mesh.Meta{Kind: mesh.KindRequestAuthentication, Namespace: "ns", Name: "jwt"},
		Spec: &security.RequestAuthentication{JwtRules: rules},
	}})
}

// mint signs a token for alice from iss, valid for an hour from now.
func mint(t *testing.T, k jwk.Key, iss string, now time.Time) string {
	t.Helper()
	return authntest.Token(t, k, authntest.Claims{Issuer: iss, Subject: "alice", Expiry: now.Add(time.Hour)})
}

type harness struct {
	r       *Resolver
	clock   *fakeClock
	changes chan string
	reg     *prometheus.Registry
}

func start(t *testing.T, p *idp, snap *mesh.Snapshot) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(), changes: make(chan string, 10), reg: prometheus.NewRegistry()}
	h.r = New(Config{Clock: h.clock, Client: p.srv.Client(), Registry: h.reg, OnChange: func(iss string) { h.changes <- iss }})
	h.r.Track(snap) // before Run, so its first round fetches
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) noChange(t *testing.T) {
	t.Helper()
	select {
	case iss := <-h.changes:
		t.Fatalf("unexpected change notification for %s", iss)
	default:
	}
}

func (h *harness) changed(t *testing.T, want string) {
	t.Helper()
	select {
	case iss := <-h.changes:
		if iss != want {
			t.Fatalf("change for %s, want %s", iss, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change notification within 10s")
	}
}

// authenticate runs a token through the jwt_authn config the translator
// builds from the resolver's current keys.
func authenticate(t *testing.T, r *Resolver, snap *mesh.Snapshot, tok string, now time.Time) error {
	t.Helper()
	cfg, _ := authn.JWTAuthn(snap.All(mesh.KindRequestAuthentication), r)
	_, err := authn.Authenticate(cfg, authn.TokenRequest{Method: "GET", Headers: map[string]string{"authorization": "Bearer " + tok}}, now)
	return err
}

func TestDiscoveryDownAtStartRecoversRotatesAndKeepsLastGood(t *testing.T) {
	p := newIDP(t, "")
	iss := p.srv.URL
	snap := snapWith(&security.JWTRule{Issuer: iss}) // OIDC discovery
	h := start(t, p, snap)
	rsaKey, rotatedKey := authntest.Key(t, "rsa"), authntest.Key(t, "rsa-rotated")

	// Down at start: fail closed, retry fast.
	if d := h.clock.waitSleep(t); d != time.Second {
		t.Fatalf("retry after first failure in %s, want 1s", d)
	}
	h.noChange(t)
	if _, ok := h.r.JWKS(iss, ""); ok {
		t.Fatal("keys reported available while the endpoint is down")
	}
	if err := authenticate(t, h.r, snap, mint(t, rsaKey, iss, h.clock.Now()), h.clock.Now()); !errors.Is(err, authn.ErrJWTInvalid) {
		t.Fatalf("token while keys are unavailable: err = %v, want rejected", err)
	}
	if _, fs := authn.JWTAuthn(snap.All(mesh.KindRequestAuthentication), h.r); len(fs) != 1 || fs[0].Reason != authn.ReasonJWKSUnavailable {
		t.Errorf("findings = %v", fs)
	}
	if e := h.r.LastError(iss, ""); !strings.Contains(e, "503") {
		t.Errorf("last error = %q, want the 503", e)
	}
	if got := metricValue(t, h.reg, "ward_jwks_available", iss); got != 0 {
		t.Errorf("ward_jwks_available = %v, want 0", got)
	}

	// Recovery: pushed at once.
	p.mode.Store("good")
	h.clock.Advance(time.Second)
	h.changed(t, iss)
	if d := h.clock.waitSleep(t); d != DefaultRefresh {
		t.Fatalf("next refresh in %s, want %s", d, DefaultRefresh)
	}
	st := h.r.Status()
	if len(st) != 1 || !st[0].Available || strings.Join(st[0].KeyIDs, ",") != "ward-test-rsa" || st[0].ResolvedURI != iss+"/jwks" || st[0].ConsecutiveFailures != 0 {
		t.Fatalf("status = %+v", st)
	}
	if err := authenticate(t, h.r, snap, mint(t, rsaKey, iss, h.clock.Now()), h.clock.Now()); err != nil {
		t.Fatalf("valid token after recovery: %v", err)
	}
	if got := metricValue(t, h.reg, "ward_jwks_available", iss); got != 1 {
		t.Errorf("ward_jwks_available = %v, want 1", got)
	}

	// Rotation at the next refresh.
	p.mode.Store("rotated")
	h.clock.Advance(DefaultRefresh)
	h.changed(t, iss)
	h.clock.waitSleep(t)
	if err := authenticate(t, h.r, snap, mint(t, rotatedKey, iss, h.clock.Now()), h.clock.Now()); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if err := authenticate(t, h.r, snap, mint(t, rsaKey, iss, h.clock.Now()), h.clock.Now()); !errors.Is(err, authn.ErrJWTInvalid) {
		t.Fatalf("token of the retired key: err = %v, want rejected", err)
	}

	// Malformed: rejected, last good kept, backoff doubles.
	p.mode.Store("malformed")
	h.clock.Advance(DefaultRefresh)
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d := h.clock.waitSleep(t); d != want {
			t.Fatalf("retry in %s, want %s", d, want)
		}
		h.clock.Advance(want)
	}
	h.clock.waitSleep(t)
	h.noChange(t)
	if e := h.r.LastError(iss, ""); !strings.Contains(e, "validate") {
		t.Errorf("last error = %q, want a validation error", e)
	}
	if fs := authn.RequestAuthFindings(snap, h.r); len(fs) != 1 || fs[0].Reason != authn.ReasonJWKSStale {
		t.Errorf("status findings while serving last good keys = %v", fs)
	}
	if err := authenticate(t, h.r, snap, mint(t, rotatedKey, iss, h.clock.Now()), h.clock.Now()); err != nil {
		t.Fatalf("last good keys were not kept: %v", err)
	}

	// Recovery with the same keys: no push needed.
	p.mode.Store("rotated")
	h.clock.Advance(8 * time.Second)
	if d := h.clock.waitSleep(t); d != DefaultRefresh {
		t.Fatalf("after recovery next refresh in %s", d)
	}
	h.noChange(t)
	if fs := authn.RequestAuthFindings(snap, h.r); len(fs) != 0 {
		t.Errorf("findings after recovery = %v", fs)
	}
	if st := h.r.Status(); st[0].LastError == "" || st[0].LastErrorAt == nil {
		t.Errorf("/debug/jwks forgot the last error after recovery: %+v", st[0])
	}
}

func TestBackoffCapsAtMax(t *testing.T) {
	r := New(Config{})
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := r.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := r.backoff(40); got != DefaultMaxBackoff {
		t.Errorf("backoff(40) = %s, want the 60m cap", got)
	}
}

func TestJWKSURIAndDebugAndTrackDrop(t *testing.T) {
	p := newIDP(t, "")
	p.mode.Store("good")
	const iss = "https://issuer.example"
	snap := snapWith(&security.JWTRule{Issuer: iss, JwksUri: p.srv.URL + "/jwks"})
	h := start(t, p, snap)
	h.changed(t, iss)
	h.clock.waitSleep(t)

	rec := httptest.NewRecorder()
	h.r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/jwks", nil))
	var st []Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Issuer != iss || !st[0].Available || st[0].LastSuccess == nil || len(st[0].UsedBy) != 1 {
		t.Fatalf("/debug/jwks = %s", rec.Body.String())
	}
	if n := metricValue(t, h.reg, "ward_jwks_fetch_total", iss); n != 1 {
		t.Errorf("ward_jwks_fetch_total = %v, want 1", n)
	}

	h.r.Track(mesh.NewSnapshot(mesh.MeshConfig{}, nil))
	if st := h.r.Status(); len(st) != 0 {
		t.Errorf("status after the rule is gone = %+v", st)
	}
}

func TestDiscoveryRejectsIssuerMismatch(t *testing.T) {
	p := newIDP(t, "https://someone-else.example")
	p.mode.Store("good")
	h := start(t, p, snapWith(&security.JWTRule{Issuer: p.srv.URL}))
	h.clock.waitSleep(t)
	if e := h.r.LastError(p.srv.URL, ""); !strings.Contains(e, "discovery") || !strings.Contains(e, "someone-else") {
		t.Fatalf("last error = %q", e)
	}
	if p.hits.Load() != 0 {
		t.Error("keys were fetched from a discovery document naming another issuer")
	}
}

func TestInlineJWKSNeedsNoFetch(t *testing.T) {
	r := New(Config{})
	r.Track(snapWith(&security.JWTRule{Issuer: "i", Jwks: `{"keys":[]}`}))
	if st := r.Status(); len(st) != 0 {
		t.Errorf("inline jwks tracked for fetching: %+v", st)
	}
}

// metricValue sums the samples of a metric family whose issuer label is iss.
func metricValue(t *testing.T, reg *prometheus.Registry, name, iss string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "issuer" && l.GetValue() == iss {
					sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestIssuerlessRuleFetchesJWKSURI: a rule with jwksUri and no issuer
// (valid in Istio) is fetched from its jwksUri like any other.
func TestIssuerlessRuleFetchesJWKSURI(t *testing.T) {
	p := newIDP(t, "")
	p.mode.Store("good")
	uri := p.srv.URL + "/jwks"
	h := start(t, p, snapWith(&security.JWTRule{JwksUri: uri}))
	h.changed(t, "")
	h.clock.waitSleep(t)
	if _, ok := h.r.JWKS("", uri); !ok {
		t.Fatalf("no keys for the issuer-less rule; status %+v", h.r.Status())
	}
}
