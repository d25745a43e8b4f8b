package authn

import (
	"errors"
	"strings"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
)

// TestJWTPresenceRequired pins jwtRules[].presence (istio.io/api v1.32):
// a REQUIRED rule's token must be present and valid even when another
// rule's token is; OPTIONAL (the default) keeps Istio's "a missing token
// passes".
func TestJWTPresenceRequired(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	userKey, deviceKey := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	const userIss, deviceIss = "https://user.example", "https://device.example"
	user := &security.JWTRule{Issuer: userIss, Jwks: authntest.PublicJWKS(t, userKey)}
	device := &security.JWTRule{Issuer: deviceIss, Jwks: authntest.PublicJWKS(t, deviceKey),
		FromHeaders: []*security.JWTHeader{{Name: "x-device-token"}}, Presence: security.JWTRule_REQUIRED}
	cfg, findings := JWTAuthn([]*mesh.Config{ra("ns", "both", nil, user, device)}, nil)
	if len(findings) != 0 {
		t.Fatalf("findings = %v", findings)
	}
	mustValidate(t, cfg)
	mustValidate(t, JWTFilter(cfg))
	claims := func(iss string) authntest.Claims {
		return authntest.Claims{Issuer: iss, Subject: "s", IssuedAt: now, Expiry: now.Add(time.Hour)}
	}
	userTok := "Bearer " + authntest.Token(t, userKey, claims(userIss))
	deviceTok := authntest.Token(t, deviceKey, claims(deviceIss))
	badDevice := authntest.Token(t, userKey, claims(deviceIss)) // signed by the wrong key
	cases := []struct {
		name    string
		headers map[string]string
		wantErr error
	}{
		{"both tokens", map[string]string{"authorization": userTok, "x-device-token": deviceTok}, nil},
		{"required token alone", map[string]string{"x-device-token": deviceTok}, nil},
		{"no token at all", nil, ErrJWTMissing},
		{"optional token valid, required missing", map[string]string{"authorization": userTok}, ErrJWTMissing},
		{"required token invalid", map[string]string{"authorization": userTok, "x-device-token": badDevice}, ErrJWTInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Authenticate(cfg, TokenRequest{Method: "GET", Headers: tc.headers}, now)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}

	// Without REQUIRED the same request without the device token passes.
	device.Presence = security.JWTRule_OPTIONAL
	opt, _ := JWTAuthn([]*mesh.Config{ra("ns", "both", nil, user, device)}, nil)
	if _, err := Authenticate(opt, TokenRequest{Method: "GET", Headers: map[string]string{"authorization": userTok}}, now); err != nil {
		t.Errorf("OPTIONAL: err = %v, want nil", err)
	}
	if _, err := Authenticate(opt, TokenRequest{Method: "GET"}, now); err != nil {
		t.Errorf("OPTIONAL, no token: err = %v, want nil", err)
	}
}

// TestJWTIssuerless pins a rule with jwksUri and no issuer (valid in
// Istio): the token's issuer is not checked, the keys come from jwksUri,
// and the principal is the token's own iss/sub.
func TestJWTIssuerless(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	key, other := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	const uri = "https://keys.example/jwks"
	pol := ra("ns", "anyiss", nil, &security.JWTRule{JwksUri: uri})
	cfg, findings := JWTAuthn([]*mesh.Config{pol}, staticKeys{"|" + uri: authntest.PublicJWKS(t, key)})
	if len(findings) != 0 {
		t.Fatalf("findings = %v", findings)
	}
	mustValidate(t, cfg)
	for _, iss := range []string{"https://a.example", "https://b.example"} {
		tok := authntest.Token(t, key, authntest.Claims{Issuer: iss, Subject: "bob", IssuedAt: now, Expiry: now.Add(time.Hour)})
		got, err := Authenticate(cfg, bearer(tok), now)
		if err != nil || got.Principal != iss+"/bob" {
			t.Errorf("iss %s: got %+v, %v; want principal %s/bob", iss, got, err, iss)
		}
	}
	wrongKey := authntest.Token(t, other, authntest.Claims{Issuer: "https://a.example", Subject: "bob", IssuedAt: now, Expiry: now.Add(time.Hour)})
	if _, err := Authenticate(cfg, bearer(wrongKey), now); !errors.Is(err, ErrJWTInvalid) {
		t.Errorf("token signed by another key: err = %v, want ErrJWTInvalid", err)
	}
	// Keys not fetched yet: fail closed, named by the jwksUri.
	_, findings = JWTAuthn([]*mesh.Config{pol}, staticKeys{})
	if len(findings) != 1 || findings[0].Reason != ReasonJWKSUnavailable {
		t.Fatalf("findings = %v, want one JWKSUnavailable", findings)
	}
	if want := "any issuer, keys from " + uri; !strings.Contains(findings[0].Message, want) {
		t.Errorf("finding %q does not say %q", findings[0].Message, want)
	}
}
