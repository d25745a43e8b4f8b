package authntest

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TestTokenVerifiesAgainstItsJWKSOnly: a token from each test key parses
// with its claims under a JWKS holding that key, and fails under a JWKS
// holding only the others (including a fresh key with the same kid).
func TestTokenVerifiesAgainstItsJWKSOnly(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	keys := map[string]jwk.Key{"rsa": Key(t, "rsa"), "rsa-rotated": Key(t, "rsa-rotated"), "ec": Key(t, "ec")}
	for name, k := range keys {
		kid, _ := k.KeyID()
		tok := Token(t, k, Claims{Issuer: "https://i.example", Subject: "alice", Audience: []string{"cart"}, Expiry: exp, Extra: map[string]any{"scope": "write"}})
		own, err := jwk.ParseString(PublicJWKS(t, k))
		if err != nil {
			t.Fatal(err)
		}
		got, err := jwt.ParseString(tok, jwt.WithKeySet(own))
		if err != nil {
			t.Fatalf("%s: token under its own JWKS: %v", name, err)
		}
		iss, _ := got.Issuer()
		sub, _ := got.Subject()
		gotExp, _ := got.Expiration()
		var scope string
		if err := got.Get("scope", &scope); err != nil || iss != "https://i.example" || sub != "alice" || !gotExp.Equal(exp) || scope != "write" {
			t.Errorf("%s: claims iss=%q sub=%q exp=%v scope=%q (%v)", name, iss, sub, gotExp, scope, err)
		}
		var others []jwk.Key
		for n, o := range keys {
			if n != name {
				others = append(others, o)
			}
		}
		others = append(others, NewKey(t, kid))
		other, err := jwk.ParseString(PublicJWKS(t, others...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwt.ParseString(tok, jwt.WithKeySet(other)); err == nil {
			t.Errorf("%s: token verified under a JWKS without its key", name)
		}
	}
}
