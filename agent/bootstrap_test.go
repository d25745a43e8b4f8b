package agent

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/xds/translate"
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

// TestGRPCBootstrapLocality: node.locality is always written (grpc-js-xds
// refuses a bootstrap without it): {} when unknown, else the parts set.
func TestGRPCBootstrapLocality(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	cases := map[string]map[string]string{
		"":                {},
		"us-east":         {"region": "us-east"},
		"us-east/a/rack1": {"region": "us-east", "zone": "a", "sub_zone": "rack1"},
		"us-east//rack1":  {"region": "us-east", "sub_zone": "rack1"},
	}
	for loc, want := range cases {
		b, err := GRPCBootstrap(GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Name: "cart-0", Locality: loc}, id, "/certs")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Node struct {
				Locality *map[string]string `json:"locality"`
			} `json:"node"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Node.Locality == nil {
			t.Fatalf("locality %q: node.locality missing:\n%s", loc, b)
		}
		if !maps.Equal(*doc.Node.Locality, want) {
			t.Errorf("locality %q: node.locality %v, want %v", loc, *doc.Node.Locality, want)
		}
	}
}

// TestGRPCBootstrapIstioProviders: like Istio's agent, the bootstrap has
// exactly one certificate provider, "default", with the certificate, key
// and roots, and it is the instance the translator names for both.
func TestGRPCBootstrapIstioProviders(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	b, err := GRPCBootstrap(GRPCBootstrapConfig{XDSAddress: "127.0.0.1:15012", Name: "cart-0"}, id, "/certs")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Providers map[string]struct {
			Plugin string            `json:"plugin_name"`
			Config map[string]string `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	p, ok := doc.Providers["default"]
	if len(doc.Providers) != 1 || !ok || p.Plugin != "file_watcher" {
		t.Fatalf("certificate providers %+v, want only file_watcher \"default\"", doc.Providers)
	}
	for _, k := range []string{"certificate_file", "private_key_file", "ca_certificate_file"} {
		if p.Config[k] == "" {
			t.Errorf("provider default has no %s", k)
		}
	}
	for _, inst := range []string{translate.GRPCIdentityInstance, translate.GRPCRootInstance, authn.GRPCIdentityInstance, authn.GRPCRootInstance, GRPCIdentityInstance, GRPCRootInstance} {
		if _, ok := doc.Providers[inst]; !ok {
			t.Errorf("generated config names provider instance %q, which the bootstrap lacks", inst)
		}
	}
}
