package authntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// testdata is authn/testdata, next to this package's directory.
func testdata(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("authntest: runtime.Caller cannot locate authn/testdata")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Key loads authn/testdata/<name>.private.jwk.json ("rsa", "rsa-rotated",
// "ec"): a private key with its kid and alg set.
func Key(t testing.TB, name string) jwk.Key {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata(t), name+".private.jwk.json"))
	if err != nil {
		t.Fatalf("authntest: read test key: %v", err)
	}
	k, err := jwk.ParseKey(b)
	if err != nil {
		t.Fatalf("authntest: parse test key %s: %v", name, err)
	}
	return k
}

// NewKey returns a fresh ES256 (P-256) private key with the given kid: a
// signer no JWKS on disk knows.
func NewKey(t testing.TB, kid string) jwk.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("authntest: generate key: %v", err)
	}
	k, err := jwk.Import(priv)
	if err != nil {
		t.Fatalf("authntest: import key: %v", err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatalf("authntest: set kid: %v", err)
	}
	if err := k.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		t.Fatalf("authntest: set alg: %v", err)
	}
	return k
}

// PublicJWKS renders the public halves of keys as a JWKS document.
func PublicJWKS(t testing.TB, keys ...jwk.Key) string {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		p, err := k.PublicKey()
		if err != nil {
			t.Fatalf("authntest: public key: %v", err)
		}
		if err := set.AddKey(p); err != nil {
			t.Fatalf("authntest: add key to set: %v", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("authntest: marshal JWKS: %v", err)
	}
	return string(b)
}

// Claims are the claims of a test token. Empty or zero fields are left out
// of the token.
type Claims struct {
	Issuer, Subject string
	Audience        []string
	IssuedAt        time.Time
	Expiry          time.Time
	Extra           map[string]any // further claims, e.g. "scope"
}

// Token signs c with k, using k's own alg and kid.
func Token(t testing.TB, k jwk.Key, c Claims) string {
	t.Helper()
	b := jwt.NewBuilder()
	if c.Issuer != "" {
		b = b.Issuer(c.Issuer)
	}
	if c.Subject != "" {
		b = b.Subject(c.Subject)
	}
	if len(c.Audience) > 0 {
		b = b.Audience(c.Audience)
	}
	if !c.IssuedAt.IsZero() {
		b = b.IssuedAt(c.IssuedAt)
	}
	if !c.Expiry.IsZero() {
		b = b.Expiration(c.Expiry)
	}
	for n, v := range c.Extra {
		b = b.Claim(n, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatalf("authntest: build token: %v", err)
	}
	alg, ok := k.Algorithm()
	if !ok {
		t.Fatal("authntest: signing key has no alg")
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, k))
	if err != nil {
		t.Fatalf("authntest: sign token: %v", err)
	}
	return string(signed)
}
