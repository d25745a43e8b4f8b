package xds

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// A WorkloadEntry change to one service regenerates (and re-marshals)
// only that service's endpoint sets; every other service's are reused
// from the previous push as they were.
func TestEndpointSetsMemoisedPerService(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	a, b := serviceEntry("a.test", 80, "10.0.0.1"), serviceEntry("b.test", 80, "10.0.0.2")
	s.UpdateNow(snapshotOf(a, b))
	const id = "sidecar~10.1.0.1~app.test~test.svc.cluster.local"
	s.attach(1, &core.Node{Id: id})
	byName := func() map[string]*anypb.Any {
		g := s.currentOf(id)
		if g == nil {
			t.Fatal("no config generated")
		}
		return g.byName(3)
	}
	before := byName()
	s.UpdateNow(snapshotOf(serviceEntry("a.test", 80, "10.0.0.9"), b))
	after := byName()
	const ca, cb = "outbound|80||a.test", "outbound|80||b.test"
	if before[ca] == nil || before[cb] == nil {
		t.Fatalf("endpoint sets missing: %v", before)
	}
	if after[ca] == before[ca] {
		t.Errorf("changed service's endpoint set was not regenerated")
	}
	if after[cb] != before[cb] {
		t.Errorf("unchanged service's endpoint set was regenerated instead of reused")
	}
	// Unused parts are pruned with the configs that held them.
	s.mu.Lock()
	n := 0
	for k := range s.gens {
		if k[:2] == "s:" {
			n++
		}
	}
	s.mu.Unlock()
	if n != 2 {
		t.Errorf("%d per-service endpoint parts cached, want 2 (the old one of a.test pruned)", n)
	}
}
