package agent

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/xds/translate"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testCA is a real CA serving over gRPC+TLS on loopback; down makes every
// call fail with Unavailable, as an unreachable CA would.
type testCA struct {
	ca   *ca.CA
	addr string
	down atomic.Bool
}

func startCA(t *testing.T, clk ca.Clock, mod func(*ca.Config)) *testCA {
	t.Helper()
	cfg := ca.Config{StateDir: t.TempDir(), TrustDomain: "example.org", Clock: clk, DefaultTTL: 10 * time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCA{ca: c}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if tc.down.Load() {
				return nil, status.Error(codes.Unavailable, "ca down")
			}
			return h(ctx, req)
		}))
	c.Register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	tc.addr = lis.Addr().String()
	return tc
}

func (tc *testCA) agentConfig(t *testing.T, clk Clock, ns, sa string) Config {
	t.Helper()
	tok, err := tc.ca.Tokens().Create(ns, sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		CAAddr: tc.addr, TrustDomain: "example.org", CABundlePEM: tc.ca.BundlePEM(), JoinToken: tok.String(),
		Clock: clk, Rand: func() float64 { return 0.5 },
	}
}

// runAgent runs a until the test ends.
func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// next waits (at most 10s) for the identity to change from prev.
func next(t *testing.T, a *Agent, ch <-chan struct{}) *SVID {
	t.Helper()
	select {
	case <-ch:
		return a.Current()
	case <-time.After(10 * time.Second):
		t.Fatal("no new identity within 10s")
	}
	return nil
}

func TestEnrolRotateAndFiles(t *testing.T) {
	clk := newFakeClock(time.Now().Truncate(time.Second))
	tc := startCA(t, clk, nil)
	cfg := tc.agentConfig(t, clk, "shop", "cart")
	cfg.OutputDir = t.TempDir()
	cfg.Bootstrap = &GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Name: "cart-0", IP: "10.0.0.7", Labels: map[string]string{"app": "cart"}}
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := a.Changed()
	runAgent(t, a)
	first := next(t, a, ch)
	if first.ID.String() != "spiffe://example.org/ns/shop/sa/cart" {
		t.Fatalf("enrolled as %s", first.ID)
	}
	leaf := first.Certs[0]
	life := leaf.NotAfter.Sub(clk.Now())
	if want := clk.Now().Add(life / 2); !first.RenewAt.Equal(want) {
		t.Errorf("renew at %v, want half-life %v", first.RenewAt, want)
	}
	checkFiles(t, cfg.OutputDir, first)
	if got := gauge(t, reg, "ward_agent_cert_expiry_timestamp_seconds"); got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("expiry metric %v, want %v", got, leaf.NotAfter.Unix())
	}

	// Rotation: the join token is spent, so this renewal must use mTLS.
	clk.waitForWaiter(t)
	ch = a.Changed()
	clk.AdvanceTo(first.RenewAt)
	second := next(t, a, ch)
	if second.Certs[0].SerialNumber.Cmp(leaf.SerialNumber) == 0 || second.ID != first.ID {
		t.Fatalf("rotation did not issue a new certificate for the same identity")
	}
	if second.Key == first.Key {
		t.Error("rotation reused the private key")
	}
	checkFiles(t, cfg.OutputDir, second)
}

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
	t.Fatalf("metric %s not found", name)
	return 0
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

func checkFiles(t *testing.T, dir string, s *SVID) {
	t.Helper()
	for name, want := range map[string][]byte{FileCertChain: s.ChainPEM, FileKey: s.KeyPEM, FileRoots: s.BundlePEM} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != string(want) {
			t.Errorf("%s: %v, content matches: %v", name, err, string(b) == string(want))
		}
	}
	fi, err := os.Stat(filepath.Join(dir, FileKey))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var boot struct {
		Node struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		} `json:"node"`
		Providers map[string]struct {
			Plugin string            `json:"plugin_name"`
			Config map[string]string `json:"config"`
		} `json:"certificate_providers"`
		Template string `json:"server_listener_resource_name_template"`
	}
	b, err := os.ReadFile(filepath.Join(dir, FileBootstrap))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &boot); err != nil {
		t.Fatal(err)
	}
	if boot.Template != translate.GRPCServerListenerPrefix+"%s" {
		t.Errorf("listener template %q does not match the translator's", boot.Template)
	}
	id := boot.Providers[translate.GRPCIdentityInstance]
	root := boot.Providers[translate.GRPCRootInstance]
	if id.Plugin != "file_watcher" || id.Config["certificate_file"] != filepath.Join(dir, FileCertChain) ||
		id.Config["private_key_file"] != filepath.Join(dir, FileKey) || root.Config["ca_certificate_file"] != filepath.Join(dir, FileRoots) {
		t.Errorf("certificate providers %+v", boot.Providers)
	}
	if boot.Node.ID != "grpc~10.0.0.7~cart-0.shop~shop.svc.cluster.local" || boot.Node.Metadata["SERVICE_ACCOUNT"] != "cart" {
		t.Errorf("node %+v", boot.Node)
	}
}

func TestRetryWhileCAUnreachable(t *testing.T) {
	clk := newFakeClock(time.Now().Truncate(time.Second))
	tc := startCA(t, clk, nil)
	cfg := tc.agentConfig(t, clk, "shop", "cart")
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.down.Store(true)
	runAgent(t, a)
	clk.waitForWaiter(t) // first attempt failed; backing off 1s
	if a.Current() != nil {
		t.Fatal("identity without a CA")
	}
	ch := a.Changed()
	clk.Advance(time.Second)
	clk.waitForWaiter(t) // second failure; backing off 2s
	if n := counter(t, reg, "ward_agent_renewals_total", "failure"); n != 2 {
		t.Errorf("failures %v, want 2", n)
	}
	tc.down.Store(false)
	clk.Advance(2 * time.Second)
	first := next(t, a, ch)

	// At renewal time the CA is down again: the agent keeps serving the
	// valid certificate and retries.
	clk.waitForWaiter(t)
	tc.down.Store(true)
	clk.AdvanceTo(first.RenewAt)
	clk.waitForWaiter(t)
	if a.Current() != first {
		t.Fatal("the valid certificate was dropped while the CA is down")
	}
	ch = a.Changed()
	tc.down.Store(false)
	clk.Advance(time.Second)
	if s := next(t, a, ch); s.Certs[0].SerialNumber.Cmp(first.Certs[0].SerialNumber) == 0 {
		t.Error("no new certificate after the CA came back")
	}
}

func TestNoCredential(t *testing.T) {
	clk := newFakeClock(time.Now())
	tc := startCA(t, clk, nil)
	cfg := tc.agentConfig(t, clk, "a", "b")
	cfg.JoinToken = ""
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(context.Background()); err == nil {
		t.Error("renewed without any credential")
	}
	cfg.JoinToken = "wardjt.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	cfg.Metrics = prometheus.NewRegistry()
	a, _ = New(cfg)
	if err := a.Renew(context.Background()); err == nil || a.Current() != nil {
		t.Errorf("unknown join token: %v", err)
	}
}

func TestTokenFile(t *testing.T) {
	clk := newFakeClock(time.Now())
	tc := startCA(t, clk, func(c *ca.Config) { c.TokenReviewer = staticReviewer{} })
	cfg := tc.agentConfig(t, clk, "a", "b")
	cfg.JoinToken = ""
	cfg.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.TokenFile, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := a.Current().ID.String(); got != "spiffe://example.org/ns/kns/sa/ksa" {
		t.Errorf("enrolled as %s", got)
	}
}

// TestRenewalJitter: renewal lands within RenewFraction ± Jitter of the
// lifetime counted from receipt.
func TestRenewalJitter(t *testing.T) {
	clk := newFakeClock(time.Now().Truncate(time.Second))
	tc := startCA(t, clk, nil)
	for _, tc2 := range []struct {
		r    float64
		want float64
	}{{0, 0.49}, {0.5, 0.50}, {0.999999, 0.51}} {
		cfg := tc.agentConfig(t, clk, "a", "b")
		cfg.Rand = func() float64 { return tc2.r }
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Renew(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := a.Current()
		got := float64(s.RenewAt.Sub(clk.Now())) / float64(s.Certs[0].NotAfter.Sub(clk.Now()))
		if got < tc2.want-0.0001 || got > tc2.want+0.0001 {
			t.Errorf("rand %v: renews at %.4f of the lifetime, want %.2f", tc2.r, got, tc2.want)
		}
	}
}
