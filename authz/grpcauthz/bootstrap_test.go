package grpcauthz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/xds/hooks"
)

// TestReadBootstrap reads the workload back from the bootstrap `ward
// agent --output-dir --authz ext-authz` writes.
func TestReadBootstrap(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	b, err := agent.GRPCBootstrap(agent.GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Name: "cart-0", IP: "10.0.0.7",
		Labels: map[string]string{"app": "cart", "version": "v1"}, Authz: agent.AuthzExtAuthz}, id, "/certs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Workload{Namespace: "shop", Name: "cart-0", Labels: map[string]string{"app": "cart", "version": "v1"}, Authz: AuthzExtAuthz}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("workload (-want +got):\n%s", d)
	}
	for _, bad := range []string{`{`, `{"node":{"metadata":{}}}`, `{"node":{"metadata":{"NAMESPACE":"a","LABELS":"x"}}}`} {
		if _, err := ParseBootstrap([]byte(bad)); err == nil {
			t.Errorf("ParseBootstrap(%s) accepted", bad)
		}
	}
	if _, err := ReadBootstrap(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing bootstrap file was accepted")
	}
	names := [][3]string{{MetaAuthz, agent.MetaAuthz, hooks.MetaAuthz}, {AuthzExtAuthz, agent.AuthzExtAuthz, hooks.AuthzExtAuthz}}
	for _, n := range names {
		if n[0] != n[1] || n[0] != n[2] {
			t.Errorf("interceptor, agent and xDS hooks disagree: %q", n)
		}
	}
}
