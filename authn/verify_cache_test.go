package authn

import (
	"errors"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
)

// Parsed key sets are memoised by their text: a rotated JWKS is a new
// text, so the old key stops verifying at once and the new one starts,
// in either order of use.
func TestAuthenticateFollowsKeyRotationThroughTheKeyCache(t *testing.T) {
	oldKey, newKey := authntest.Key(t, "rsa"), authntest.Key(t, "rsa-rotated")
	const iss = "https://issuer.example"
	pol := ra("ns", "jwt", nil, &security.JWTRule{Issuer: iss, JwksUri: "https://issuer.example/jwks"})
	before, _ := JWTAuthn([]*mesh.Config{pol}, staticKeys{iss + "|https://issuer.example/jwks": authntest.PublicJWKS(t, oldKey)})
	after, _ := JWTAuthn([]*mesh.Config{pol}, staticKeys{iss + "|https://issuer.example/jwks": authntest.PublicJWKS(t, newKey)})
	now := time.Now()
	c := authntest.Claims{Issuer: iss, Subject: "alice", Expiry: now.Add(time.Hour)}
	oldTok, newTok := authntest.Token(t, oldKey, c), authntest.Token(t, newKey, c)
	for range 2 { // the second round is served from the cache
		if _, err := Authenticate(before, bearer(oldTok), now); err != nil {
			t.Fatalf("old key under the old JWKS: %v", err)
		}
		if _, err := Authenticate(after, bearer(oldTok), now); !errors.Is(err, ErrJWTInvalid) {
			t.Fatalf("old key under the rotated JWKS: err %v, want ErrJWTInvalid", err)
		}
		if _, err := Authenticate(after, bearer(newTok), now); err != nil {
			t.Fatalf("new key under the rotated JWKS: %v", err)
		}
		if _, err := Authenticate(before, bearer(newTok), now); !errors.Is(err, ErrJWTInvalid) {
			t.Fatalf("new key under the old JWKS: err %v, want ErrJWTInvalid", err)
		}
	}
}
