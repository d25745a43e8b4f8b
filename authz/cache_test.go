package authz

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh"
)

// TestDecisionCacheAgreesWithEvaluation decides every semantics case with
// a cold and then a warm cache (all cases of a file share the cache of
// their workload, so a key that forgot an attribute would return another
// case's decision) and compares with an uncached engine.
func TestDecisionCacheAgreesWithEvaluation(t *testing.T) {
	for name, sf := range loadSemantics(t) {
		snap := mesh.NewSnapshot(meshConfigOf(t, sf.Mesh), parseConfigs(t, sf.Policies))
		cached, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := NewEngine(snap, EngineConfig{Timeout: testTimeout, DecisionCache: -1})
		if err != nil {
			t.Fatal(err)
		}
		for pass := 0; pass < 2; pass++ {
			for _, c := range sf.Cases {
				ns, labels := or(c.NS, "foo"), labelsOr(c.Labels)
				pc, err := cached.For(context.Background(), ns, labels)
				if err != nil {
					t.Fatal(err)
				}
				pp, err := plain.For(context.Background(), ns, labels)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := pc.Decide(context.Background(), requestOf(c.Req))
				want, _ := pp.Decide(context.Background(), requestOf(c.Req))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s/%s pass %d: cached decision differs (-uncached +cached):\n%s", name, c.Name, pass, diff)
				}
			}
		}
	}
}

func TestDecisionCacheIsBoundedAndSkipsRegoProviders(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: a}
spec:
  rules: [{to: [{operation: {paths: ["/x/*"]}}]}]
`)
	eng, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), EngineConfig{Timeout: testTimeout, DecisionCache: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		r := &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/x/" + string(rune('a'+i%26)) + string(rune('a'+i/26))}}
		if d, _ := p.Decide(context.Background(), r); !d.Allowed {
			t.Fatal("denied")
		}
		if n := len(p.cache.m); n > 5 {
			t.Fatalf("cache holds %d entries, bound 5", n)
		}
	}
	mc := meshConfigOf(t, `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders: [{name: opa, rego: {module: "package envoy.authz\nimport rego.v1\nallow := true"}}]
`)
	cfgs = parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: a}
spec: {action: CUSTOM, provider: {name: opa}, rules: [{}]}
`)
	eng, err = NewEngine(mesh.NewSnapshot(mc, cfgs), EngineConfig{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ = eng.For(context.Background(), "a", nil); p.cache != nil {
		t.Error("a policy set with a rego provider is cached")
	}
}
