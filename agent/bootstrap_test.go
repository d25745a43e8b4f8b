package agent

import (
	"encoding/json"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestGRPCBootstrapAuthzMode: --authz is written as WARD_AUTHZ node
// metadata (absent by default); an unknown mode is refused.
func TestGRPCBootstrapAuthzMode(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	for _, mode := range []string{"", AuthzRBAC, AuthzExtAuthz} {
		b, err := GRPCBootstrap(GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Name: "cart-0", Labels: map[string]string{"app": "cart"}, Authz: mode}, id, "/certs")
		if err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		var doc struct {
			Node struct {
				Metadata map[string]any `json:"metadata"`
			} `json:"node"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		got, present := doc.Node.Metadata[MetaAuthz]
		if mode == "" && present {
			t.Errorf("default mode wrote %s=%v", MetaAuthz, got)
		}
		if mode != "" && got != mode {
			t.Errorf("mode %q: %s=%v", mode, MetaAuthz, got)
		}
		if doc.Node.Metadata["NAMESPACE"] != "shop" {
			t.Errorf("mode %q: NAMESPACE=%v", mode, doc.Node.Metadata["NAMESPACE"])
		}
	}
	if _, err := GRPCBootstrap(GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Authz: "opa"}, id, "/certs"); err == nil {
		t.Error("an unknown authz mode was accepted")
	}
}
