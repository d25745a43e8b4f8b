package schema

import (
	"testing"

	"github.com/wardmesh/ward/mesh"
)

func TestDecodeAll(t *testing.T) {
	cfgs, mc, err := DecodeAll([]byte(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec: {action: DENY, rules: [{from: [{source: {namespaces: [evil]}}]}]}
`), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	if mc != nil || len(cfgs) != 2 || cfgs[0].Name != "default" || cfgs[1].Name != "deny" {
		t.Fatalf("got %d configs %v, mesh config %v", len(cfgs), cfgs, mc)
	}
	if _, _, err := DecodeAll([]byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: x, namespace: y}\nspec: {mtls: {mod: STRICT}}\n"), mesh.Source{}); err == nil {
		t.Fatal("an unknown field decoded without error")
	}
}
