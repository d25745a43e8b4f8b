package authz

import (
	"context"
	"fmt"
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

// TestExplodingResidualIsNotPartiallyEvaluated: a rule whose from, to and
// when each OR many patterns would inline into tens of thousands of
// residual rules; such a workload is evaluated through its specialised
// module instead, and still decides as before.
func TestExplodingResidualIsNotPartiallyEvaluated(t *testing.T) {
	var from, to []string
	for i := range 8 {
		from = append(from, fmt.Sprintf(`{source: {principals: ["a%d/*", "*b%d", "c%d", "d%d/*", "e%d/*"]}}`, i, i, i, i, i))
		to = append(to, fmt.Sprintf(`{operation: {paths: ["/x%d/*", "*.y%d", "/z%d", "/w%d/*", "/v%d/*"], methods: ["GET", "POST", "PUT"]}}`, i, i, i, i, i))
	}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: big, namespace: ns}
spec:
  rules:
  - from: [`+strings.Join(from, ", ")+`]
    to: [`+strings.Join(to, ", ")+`]
    when: [{key: "request.headers[x-a]", values: ["a*", "*b", "c*", "*d"]}]
`))
	eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "ns", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, whole := p.compiler.Modules["ns/big.rego"]; !whole {
		t.Fatal("the exploding workload was partially evaluated")
	}
	for _, c := range []struct {
		principal, path, header string
		allow                   bool
	}{
		{"a3/x", "/x3/q", "a1", true},
		{"zz-b7", "/q.y2", "zzd", true},
		{"c4", "/z4", "c", true},
		{"c4", "/z4", "x", false},
		{"q", "/z4", "a", false},
	} {
		r := &Request{Source: Peer{Principal: c.principal}, HTTP: &HTTPRequest{Method: "GET", Path: c.path, Headers: map[string]string{"x-a": c.header}}}
		d, err := p.Decide(context.Background(), r)
		if err != nil || d.Allowed != c.allow {
			t.Errorf("%+v: allowed %t (%v), want %t", c, d.Allowed, err, c.allow)
		}
	}
}
