package ca

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
)

// syncBuffer is a log sink safe for the service's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mtlsClient returns a client renewing as id over mTLS.
func mtlsClient(t *testing.T, c *CA, addr, id string) *Client {
	t.Helper()
	key := ecKey(t)
	iss, err := c.Sign(Params{ID: mustID(t, id), PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{iss.Leaf.Raw}, PrivateKey: key, Leaf: iss.Leaf}
	return dial(t, c, addr, func(cc *ClientConfig) { cc.Certificate = cert })
}

// codes sends n CSRs through cl and counts the answers by code.
func sendCSRs(t *testing.T, cl *Client, n int) map[codes.Code]int {
	t.Helper()
	got := map[codes.Code]int{}
	csr := makeCSR(t, ecKey(t))
	for range n {
		_, err := cl.CreateCertificate(context.Background(), csr, 0)
		got[status.Code(err)]++
	}
	return got
}

// TestCSRFloodRateLimited performs the flood attack: unauthenticated CSRs
// beyond the unauthenticated share of the global rate are answered
// RESOURCE_EXHAUSTED before any parsing, the share reserved for renewals
// still serves a workload renewing over mTLS, and the warnings the flood
// causes are bounded.
func TestCSRFloodRateLimited(t *testing.T) {
	clk := &fakeClock{now: t0}
	logs := &syncBuffer{}
	c := newTestCA(t, clk, func(cfg *Config) {
		cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
		cfg.Limits = Limits{CSRMaxPerSecond: 20, UnauthenticatedShare: 0.5, FailuresPerSecond: -1, IdentityPerSecond: -1}
	})
	addr := serve(t, c)
	renewer := mtlsClient(t, c, addr, "spiffe://example.org/ns/shop/sa/cart")

	flood := sendCSRs(t, dial(t, c, addr, nil), 200)
	if flood[codes.Unauthenticated] != 10 || flood[codes.ResourceExhausted] != 190 {
		t.Fatalf("flood of 200 with a budget of 10: got %v, want 10 Unauthenticated and 190 ResourceExhausted", flood)
	}
	renewals := sendCSRs(t, renewer, 11)
	if renewals[codes.OK] != 10 || renewals[codes.ResourceExhausted] != 1 {
		t.Fatalf("renewals after the flood: got %v, want the reserved 10 OK, then ResourceExhausted", renewals)
	}
	if got := counterValue(c.metrics.rateLimited.WithLabelValues(limitUnauthenticated)); got != 190 {
		t.Errorf("rate_limited{unauthenticated} = %v, want 190", got)
	}
	if got := counterValue(c.metrics.csrs.WithLabelValues(resultRateLimited)); got != 191 {
		t.Errorf("csr_total{rate_limited} = %v, want 191", got)
	}
	if n := logs.count("csr caller not authenticated"); n != 1 {
		t.Errorf("10 failed authentications logged %d lines, want 1 per LogEvery", n)
	}
	if n := logs.count("csr refused: rate limit"); n != 2 {
		t.Errorf("rate-limit refusals logged %d lines, want one per limit (2)", n)
	}
	// A second later the buckets have refilled; the next warning counts
	// what was suppressed.
	clk.Advance(DefaultLogEvery + time.Second)
	if got := sendCSRs(t, dial(t, c, addr, nil), 1); got[codes.Unauthenticated] != 1 {
		t.Fatalf("after refill: %v", got)
	}
	if !strings.Contains(logs.String(), "suppressed=9") {
		t.Errorf("next warning does not count the 9 suppressed lines:\n%s", logs)
	}
}

// TestCSRPerIdentityLimit: one identity cannot mint certificates beyond
// its bucket, by mTLS renewal or by token, and does not exhaust others.
func TestCSRPerIdentityLimit(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := newTestCA(t, clk, func(cfg *Config) {
		cfg.Limits = Limits{IdentityPerSecond: 1, IdentityBurst: 3}
	})
	addr := serve(t, c)
	cart := mtlsClient(t, c, addr, "spiffe://example.org/ns/shop/sa/cart")
	if got := sendCSRs(t, cart, 5); got[codes.OK] != 3 || got[codes.ResourceExhausted] != 2 {
		t.Fatalf("5 renewals with a burst of 3: %v", got)
	}
	tok, err := c.Tokens().Create("shop", "cart", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := sendCSRs(t, dial(t, c, addr, withToken(tok.String())), 1); got[codes.ResourceExhausted] != 1 {
		t.Errorf("a join token for the exhausted identity: %v, want ResourceExhausted", got)
	}
	if _, _, err := c.Tokens().Check(tok); err != nil {
		t.Errorf("a refused request consumed the join token: %v", err)
	}
	if got := sendCSRs(t, mtlsClient(t, c, addr, "spiffe://example.org/ns/shop/sa/web"), 1); got[codes.OK] != 1 {
		t.Errorf("another identity is throttled too: %v", got)
	}
	clk.Advance(time.Second)
	if got := sendCSRs(t, cart, 1); got[codes.OK] != 1 {
		t.Errorf("after a second the identity's bucket refills: %v", got)
	}
	if got := counterValue(c.metrics.rateLimited.WithLabelValues(limitIdentity)); got != 3 {
		t.Errorf("rate_limited{identity} = %v, want 3", got)
	}
}

// countingReviewer counts TokenReviews and may block them.
type countingReviewer struct {
	calls atomic.Int32
	block chan struct{} // nil: answer at once
	in    chan struct{}
	ok    fakeReviewer
}

func (r *countingReviewer) Review(ctx context.Context, token string, aud []string) (*authnv1.TokenReview, error) {
	r.calls.Add(1)
	if r.block != nil {
		r.in <- struct{}{}
		<-r.block
	}
	return r.ok.Review(ctx, token, aud)
}

var cartSA = fakeReviewer{"good": {Authenticated: true, Audiences: []string{"ward-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop:cart"}}}

// TestCSRFailureBudget: a source that keeps failing authentication is
// refused before its tokens are even reviewed, while renewals over mTLS
// from the same address still work.
func TestCSRFailureBudget(t *testing.T) {
	clk := &fakeClock{now: t0}
	rev := &countingReviewer{ok: cartSA}
	c := newTestCA(t, clk, func(cfg *Config) {
		cfg.TokenReviewer = rev
		cfg.Limits = Limits{FailuresPerSecond: 1, FailureBurst: 3}
	})
	addr := serve(t, c)
	if got := sendCSRs(t, dial(t, c, addr, withToken("stolen?")), 10); got[codes.Unauthenticated] != 3 || got[codes.ResourceExhausted] != 7 {
		t.Fatalf("10 bad tokens with a failure budget of 3: %v", got)
	}
	if n := rev.calls.Load(); n != 3 {
		t.Errorf("%d TokenReviews for 10 attempts; refused attempts must not reach the API server", n)
	}
	if got := sendCSRs(t, mtlsClient(t, c, addr, "spiffe://example.org/ns/shop/sa/cart"), 1); got[codes.OK] != 1 {
		t.Errorf("renewal over mTLS from the same source: %v", got)
	}
	clk.Advance(time.Second)
	if got := sendCSRs(t, dial(t, c, addr, withToken("good")), 1); got[codes.OK] != 1 {
		t.Errorf("after the budget refills a good token works: %v", got)
	}
}

// TestCSRConcurrencyLimit: beyond CSRMaxConcurrent in flight, callers are
// answered at once instead of queueing behind a slow TokenReview.
func TestCSRConcurrencyLimit(t *testing.T) {
	rev := &countingReviewer{ok: cartSA, block: make(chan struct{}), in: make(chan struct{}, 2)}
	c := newTestCA(t, &fakeClock{now: t0}, func(cfg *Config) {
		cfg.TokenReviewer = rev
		cfg.Limits = Limits{CSRMaxConcurrent: 2}
	})
	addr := serve(t, c)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := dial(t, c, addr, withToken("good")).CreateCertificate(context.Background(), makeCSR(t, ecKey(t)), 0)
			errs <- err
		}()
	}
	for range 2 {
		select {
		case <-rev.in:
		case <-time.After(10 * time.Second):
			t.Fatal("the two CSRs did not reach the TokenReview within 10s")
		}
	}
	if got := sendCSRs(t, dial(t, c, addr, withToken("good")), 1); got[codes.ResourceExhausted] != 1 {
		t.Errorf("a third CSR while two are in flight: %v, want ResourceExhausted", got)
	}
	close(rev.block)
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("in-flight CSR: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight CSRs did not finish within 10s")
		}
	}
	if got := counterValue(c.metrics.rateLimited.WithLabelValues(limitConcurrency)); got != 1 {
		t.Errorf("rate_limited{concurrency} = %v, want 1", got)
	}
}

func TestKeyedLimiterBounded(t *testing.T) {
	k := newKeyedLimiter(1, 2, 3)
	for _, key := range []string{"a", "b", "c"} {
		k.get(key, t0).AllowN(t0, 1)
	}
	if l := k.get("d", t0); l != k.overflow {
		t.Fatal("a full table of busy buckets must hand new keys the shared overflow bucket")
	}
	later := t0.Add(time.Minute)
	if l := k.get("d", later); l == k.overflow || len(k.m) != 1 {
		t.Fatalf("refilled buckets were not evicted: %d keys", len(k.m))
	}
}
