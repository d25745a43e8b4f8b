package policies_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/policies"
)

// TestZeroTrustExample loads the example set, validates every policy and
// checks the baseline it promises.
func TestZeroTrustExample(t *testing.T) {
	b, err := fs.ReadFile(policies.Examples(), "zero-trust/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, _, err := schema.DecodeAll(b, mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		if errs := schema.Validate(c); len(errs) > 0 {
			t.Fatalf("%s: %v", c.Key(), errs)
		}
	}
	eng, err := authz.NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), authz.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "shop", mesh.Labels{"app": "cart"})
	if err != nil {
		t.Fatal(err)
	}
	mtls := "spiffe://cluster.local/ns/shop/sa/web"
	for _, tc := range []struct {
		name, principal, method, path string
		allow                         bool
		audit                         bool
	}{
		{"default deny", mtls, "GET", "/items", false, false},
		{"health allowed", mtls, "GET", "/healthz", true, false},
		{"plaintext refused even for health", "", "GET", "/healthz", false, false},
		{"admin denied", mtls, "GET", "/admin/x", false, false},
		{"writes audited", mtls, "POST", "/healthz", false, true},
	} {
		d, err := p.Decide(context.Background(), &authz.Request{
			Source: authz.Peer{IP: "10.0.0.1", Principal: tc.principal}, Destination: authz.Peer{IP: "10.0.0.2", Port: 8080},
			HTTP: &authz.HTTPRequest{Method: tc.method, Path: tc.path, Host: "cart"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != tc.allow || d.Audited() != tc.audit {
			t.Errorf("%s: %s (audited %v)", tc.name, d.Explain(), d.Audited())
		}
	}
}
