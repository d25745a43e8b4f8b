package authn

import (
	"testing"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"github.com/google/go-cmp/cmp"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// TestPayloadMetadata: the claims authorization sees are Envoy's metadata
// payload: scope/permission (and a rule's spaceDelimitedClaims) split on
// spaces at the top level only, other claims untouched.
func TestPayloadMetadata(t *testing.T) {
	pol := ra("ns", "jwt", nil, &security.JWTRule{Issuer: "https://i.example", Jwks: `{"keys":[]}`, SpaceDelimitedClaims: []string{"roles"}})
	cfg, _ := JWTAuthn([]*mesh.Config{pol}, nil)
	var name string
	for n := range cfg.GetProviders() {
		name = n
	}
	claims := map[string]any{"iss": "https://i.example", "sub": "a", "scope": "read  write", "roles": "admin", "permission": 7.0,
		"nested": map[string]any{"scope": "x y"}}
	got := PayloadMetadata(cfg, &Authentication{Provider: name, Claims: claims})
	want := map[string]any{"iss": "https://i.example", "sub": "a", "scope": []any{"read", "write"}, "roles": []any{"admin"}, "permission": 7.0,
		"nested": map[string]any{"scope": "x y"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("payload (-want +got):\n%s", d)
	}
	if claims["scope"] != "read  write" {
		t.Error("PayloadMetadata modified the authentication's claims")
	}
	if PayloadMetadata(cfg, &Authentication{}) != nil || PayloadMetadata(&jwtv3.JwtAuthentication{}, nil) != nil {
		t.Error("no claims must give no payload")
	}
}
