package authz

import (
	"context"
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

// TestWorkloadIsPartiallyEvaluated checks that a workload's policies are
// evaluated as OPA's residual: one rule per matching branch, conditions
// on the request (no helper rules, no policy packages) for the rule index.
func TestWorkloadIsPartiallyEvaluated(t *testing.T) {
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(t, BenchPolicies(10)))
	eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "bench", mesh.Labels{"app": "bench"})
	if err != nil {
		t.Fatal(err)
	}
	for name := range p.compiler.Modules {
		if strings.HasPrefix(name, "bench/") || strings.HasPrefix(name, "istio-system/") {
			t.Errorf("policy module %s is still compiled: the workload was not partially evaluated", name)
		}
	}
	mod := p.compiler.Modules[workloadFile]
	// deny-admin: "/admin", "/admin/*" on HTTP and everything on TCP; nine
	// ALLOW policies of one rule.
	if got, want := len(mod.Rules), 3+9; got != want {
		t.Errorf("residual has %d rules, want %d:\n%v", got, want, mod)
	}
	if s := mod.String(); strings.Contains(s, "data.ward.policy") {
		t.Errorf("residual still refers to the policies' helper rules:\n%s", s)
	}
}
