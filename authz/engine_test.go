package authz

import (
	"context"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

func TestEngineUpdateReusesOnlyUnchangedPolicies(t *testing.T) {
	pol := func(method string) []*mesh.Config {
		return parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: a}
spec:
  rules: [{to: [{operation: {methods: ["`+method+`"]}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w, namespace: a}
spec: {address: 10.0.0.1, labels: {app: w}}
`)
	}
	get := &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/"}}
	e1, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, pol("GET")), EngineConfig{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(e *Engine) bool {
		p, err := e.For(context.Background(), "a", nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Decide(context.Background(), get)
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	if !decide(e1) {
		t.Fatal("GET denied")
	}
	// Same policies, another snapshot (a workload changed): reused.
	cfgs := pol("GET")
	cfgs[1].Labels = map[string]string{"changed": "yes"}
	e2, err := e1.Update(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs))
	if err != nil {
		t.Fatal(err)
	}
	if e2.compiler != e1.compiler || e2.prepared != e1.prepared || e2.Snapshot() == e1.Snapshot() {
		t.Error("unchanged policies were recompiled, or the snapshot was not replaced")
	}
	// A changed policy: recompiled, and decided by the new rule.
	e3, err := e2.Update(mesh.NewSnapshot(mesh.MeshConfig{}, pol("POST")))
	if err != nil {
		t.Fatal(err)
	}
	if e3.compiler == e1.compiler {
		t.Error("changed policies reused the old compiler")
	}
	if decide(e3) {
		t.Error("GET still allowed after the policy changed to POST (stale cache)")
	}
}

func TestDecideFailsClosedOnCancelledContext(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-nothing, namespace: a}
spec: {action: DENY, rules: [{to: [{operation: {paths: ["/never"]}}]}]}
`)
	eng, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), EngineConfig{Timeout: testTimeout, DecisionCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := p.Decide(ctx, &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/"}})
	if err == nil || d.Allowed || d.Reason != ReasonError {
		t.Fatalf("decision %+v, err %v: want a fail-closed denial", d, err)
	}
}

// TestEngineReadyAndPreparesOnce: Ready never prepares; concurrent For
// calls for workloads with one policy set prepare it once and share it;
// an engine for the same policies (Update) is Ready for it at once.
func TestEngineReadyAndPreparesOnce(t *testing.T) {
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: a}
spec:
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
`))
	e, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Ready("a", mesh.Labels{"app": "x"}); ok {
		t.Fatal("Ready before any preparation")
	}
	got := make(chan *Prepared, 8)
	for i := range cap(got) {
		go func() {
			p, err := e.For(context.Background(), "a", mesh.Labels{"app": string(rune('a' + i))})
			if err != nil {
				t.Error(err)
			}
			got <- p
		}()
	}
	first := <-got
	for range cap(got) - 1 {
		if p := <-got; p != first {
			t.Fatal("one policy set prepared twice")
		}
	}
	if p, ok := e.Ready("a", mesh.Labels{"app": "new"}); !ok || p != first {
		t.Fatal("a new workload with a prepared set is not Ready")
	}
	n, err := e.Update(mesh.NewSnapshot(mesh.MeshConfig{}, snap.All(mesh.KindAuthorizationPolicy)))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := n.Ready("a", nil); !ok || p != first {
		t.Fatal("an engine for unchanged policies is not Ready")
	}
}
