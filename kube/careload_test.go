package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
)

// stepClock is a clock the test moves.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// signedBy signs a leaf with c and returns it with the root it chains to.
func signedBy(t *testing.T, c *ca.CA, ttl time.Duration) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := c.Sign(ca.Params{ID: spiffeid.RequireFromString("spiffe://cluster.local/ns/a/sa/b"), PublicKey: key.Public(), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Roots() {
		if iss.Leaf.CheckSignatureFrom(r) == nil {
			return iss.Leaf, r
		}
	}
	t.Fatal("leaf chains to no root in the bundle")
	return nil, nil
}

// A follower replica running CAWatch picks up the leader's rotation from
// the ward-ca Secret on a real API server: the staged root joins its
// bundle, and after the switch it signs with the new root. The follower's
// reservation, written with a resourceVersion precondition, survives the
// leader's switch.
func TestCAWatchFollowerReloadsLeaderRotation(t *testing.T) {
	env := kubetest.Require(t)
	const ns = "ca-reload"
	env.Namespace(t, ns, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &stepClock{t: time.Now().Truncate(time.Second)}
	store := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}
	cfg := func() ca.Config {
		return ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Store: store, Clock: clk, Log: slog.New(slog.DiscardHandler)}
	}
	leader, err := ca.New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	follower, err := ca.New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := follower.Roots()[0]

	reloaded := make(chan error, 16)
	w, err := kube.NewCAWatch(kube.CAWatchConfig{Store: store, CA: follower, Reloaded: func(err error) { reloaded <- err }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFollower := func(what string, ok func() bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for !ok() {
			select {
			case err := <-reloaded:
				if err != nil {
					t.Fatalf("%s: reload: %v", what, err)
				}
			case <-timeout:
				t.Fatalf("%s: follower did not reload within 20s (phase %s, %d roots)", what, follower.Phase(), len(follower.Roots()))
			}
		}
	}

	// The follower reserves a 72h window on the old root.
	leaf, root := signedBy(t, follower, 72*time.Hour)
	if !root.Equal(oldRoot) {
		t.Fatal("follower does not sign with the shared root")
	}

	if err := leader.Rotate(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFollower("staged", func() bool { return follower.Phase() == ca.PhaseStaged && len(follower.Roots()) == 2 })
	if _, r := signedBy(t, follower, time.Hour); !r.Equal(oldRoot) {
		t.Error("staged: the follower signs with the new root before the switch")
	}

	clk.Advance(time.Hour)
	if err := leader.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	waitFollower("retiring", func() bool { return follower.Phase() == ca.PhaseRetiring })
	if _, r := signedBy(t, follower, time.Hour); r.Equal(oldRoot) {
		t.Error("after the switch the follower still signs with the old root")
	}
	st, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Roots {
		if !r.DropAt.IsZero() && r.DropAt.Before(leaf.NotAfter) {
			t.Errorf("old root drops at %s, before the follower's leaf expires at %s: the leader's switch lost the follower's reservation", r.DropAt, leaf.NotAfter)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("CAWatch.Run: %v", err)
	}
}
