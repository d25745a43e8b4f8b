package authz

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/policies"
)

// TestDecisionOrderMatchesRegoLibrary holds the Go decision order (used
// on the hot path) to the library's data.ward.lib.decide over every case
// of the semantics suite.
func TestDecisionOrderMatchesRegoLibrary(t *testing.T) {
	opts := []func(*rego.Rego){rego.Query("data.ward.lib.decide(input)")}
	for name, src := range policies.Library() {
		opts = append(opts, rego.Module(name, src))
	}
	lib, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, sf := range loadSemantics(t) {
		snap := mesh.NewSnapshot(meshConfigOf(t, sf.Mesh), parseConfigs(t, sf.Policies))
		eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sf.Cases {
			p, err := eng.For(context.Background(), or(c.NS, "foo"), labelsOr(c.Labels))
			if err != nil || len(p.invalid) > 0 {
				continue
			}
			first, err := p.firstMatches(context.Background(), requestOf(c.Req))
			if err != nil {
				t.Fatal(err)
			}
			got := decide(p.policies, first)
			in := make([]any, len(p.policies))
			for i, pol := range p.policies {
				rules := make([]any, len(pol.Rules))
				for j := range pol.Rules {
					rules[j] = pol.RuleName(j)
				}
				var m []any
				if first[i] >= 0 {
					m = []any{first[i]}
				}
				in[i] = map[string]any{"meta": map[string]any{"id": pol.ID(), "action": string(pol.Action), "dry_run": pol.DryRun, "provider": pol.Provider, "rules": rules}, "matches": m}
			}
			out, err := lib.Eval(context.Background(), rego.EvalInput(in))
			if err != nil || len(out) != 1 {
				t.Fatalf("%s/%s: library decide: %v", name, c.Name, err)
			}
			want := out[0].Expressions[0].Value.(map[string]any)
			t.Run(strings.TrimSuffix(name, ".yaml")+"/"+c.Name, func(t *testing.T) {
				v := want["verdict"].(map[string]any)
				by, _ := v["by"].(map[string]any)
				rule, _ := by["rule"].(string)
				if diff := cmp.Diff([]any{v["allowed"], v["reason"], rule}, []any{got.Allowed, string(got.Reason), got.Rule}); diff != "" {
					t.Errorf("verdict differs (-rego +go):\n%s", diff)
				}
				shadow := want["shadow"].(map[string]any)["allowed"].(bool)
				gotShadow := got.Allowed
				if got.Shadow != nil {
					gotShadow = got.Shadow.Allowed
				}
				if shadow != gotShadow {
					t.Errorf("shadow verdict: rego %v, go %v", shadow, gotShadow)
				}
				for _, k := range []struct {
					key  string
					hits []Hit
				}{{"custom", got.Custom}, {"audit", got.Audit}, {"dry_run", got.DryRun}} {
					var w, g []string
					for _, h := range want[k.key].([]any) {
						w = append(w, h.(map[string]any)["rule"].(string))
					}
					for _, h := range k.hits {
						g = append(g, h.Rule)
					}
					if diff := cmp.Diff(w, g); diff != "" {
						t.Errorf("%s hits differ (-rego +go):\n%s", k.key, diff)
					}
				}
			})
		}
	}
}
