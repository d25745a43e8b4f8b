package ca

import (
	"context"
	"sync"
	"testing"
	"time"
)

// sharedStore is a Store with Updater semantics, shared by several CAs as
// the Kubernetes Secret is; writes counts Save and Update calls.
type sharedStore struct {
	mu     sync.Mutex
	s      *State
	writes int
}

var _ Updater = (*sharedStore)(nil)

func (m *sharedStore) Load(context.Context) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.s == nil {
		return nil, nil
	}
	return cloneOf(m.s), nil
}

func (m *sharedStore) Save(_ context.Context, s *State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s, m.writes = cloneOf(s), m.writes+1
	return nil
}

func (m *sharedStore) Update(_ context.Context, mutate func(*State) error) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := cloneOf(m.s)
	if err := mutate(next); err != nil {
		return nil, err
	}
	m.s, m.writes = cloneOf(next), m.writes+1
	return cloneOf(next), nil
}

func cloneOf(s *State) *State { return &State{Roots: append([]RootState(nil), s.Roots...)} }

// replicas returns a leader CA that created the shared state and a
// follower that loaded it, on one clock.
func replicas(t *testing.T) (leader, follower *CA, store *sharedStore, clk *fakeClock) {
	t.Helper()
	clk = &fakeClock{now: t0}
	store = &sharedStore{}
	leader = newTestCA(t, clk, func(c *Config) { c.Store = store })
	follower = newTestCA(t, clk, func(c *Config) { c.Store = store })
	return leader, follower, store, clk
}

func issuerSerial(t *testing.T, c *CA, ttl time.Duration) string {
	t.Helper()
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public(), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Roots() {
		if iss.Leaf.CheckSignatureFrom(r) == nil {
			return r.SerialNumber.Text(16)
		}
	}
	t.Fatal("leaf signed by no root in the bundle")
	return ""
}

func TestReloadFollowsLeaderRotation(t *testing.T) {
	leader, follower, _, clk := replicas(t)
	old := follower.Roots()[0].SerialNumber.Text(16)
	if err := leader.Rotate(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	changed := follower.Changed()
	if err := follower.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("Reload of a rotated state did not signal Changed")
	}
	if follower.Phase() != PhaseStaged || len(follower.Roots()) != 2 {
		t.Fatalf("follower after reload: phase %s, %d roots; want staged, 2", follower.Phase(), len(follower.Roots()))
	}
	if got := issuerSerial(t, follower, time.Hour); got != old {
		t.Errorf("staged: follower signs with %s, want the old root %s", got, old)
	}
	clk.Advance(time.Hour)
	mustReconcile(t, leader)
	if err := follower.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if follower.Phase() != PhaseRetiring {
		t.Fatalf("follower phase %s, want retiring", follower.Phase())
	}
	if got := issuerSerial(t, follower, time.Hour); got == old {
		t.Error("after the switch the follower still signs with the old root")
	}
	unchanged := follower.Changed()
	if err := follower.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-unchanged:
		t.Error("Reload of an unchanged state signalled Changed")
	default:
	}
}

// A follower's reservation, written through the store's Updater, is kept
// by the leader's later rotation: the old root stays until the follower's
// leaf expires.
func TestFollowerReservationSurvivesLeaderRotation(t *testing.T) {
	leader, follower, store, clk := replicas(t)
	iss, err := follower.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public(), TTL: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Rotate(context.Background(), time.Hour); err != nil { // leader never reloaded
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	mustReconcile(t, leader)
	st, _ := store.Load(context.Background())
	for _, r := range st.Roots {
		if !r.DropAt.IsZero() && r.DropAt.Before(iss.Leaf.NotAfter) {
			t.Fatalf("old root drops at %s, before the follower's leaf expires (%s)", r.DropAt, iss.Leaf.NotAfter)
		}
	}
	if phaseOf(st) != PhaseRetiring {
		t.Fatalf("stored phase %s, want retiring", phaseOf(st))
	}
}

// A follower that missed the switch signs with the new root anyway: its
// next reservation finds its signer retired, reloads and signs again.
func TestStaleFollowerSignsWithNewRoot(t *testing.T) {
	leader, follower, _, clk := replicas(t)
	old := follower.Roots()[0].SerialNumber.Text(16)
	if err := leader.Rotate(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	mustReconcile(t, leader)
	// No Reload: the follower's authority still has the old root signing,
	// and no reservation covers a 48h leaf.
	if got := issuerSerial(t, follower, 48*time.Hour); got == old {
		t.Fatal("a stale follower signed with the retired root")
	}
	if follower.Phase() != PhaseRetiring {
		t.Errorf("follower phase %s after its reservation reloaded, want retiring", follower.Phase())
	}
}
