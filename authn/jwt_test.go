package authn

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/protobuf/types/known/durationpb"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
)

func ra(ns, name string, sel map[string]string, rules ...*security.JWTRule) *mesh.Config {
	spec := &security.RequestAuthentication{JwtRules: rules}
	if sel != nil {
		spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
	}
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindRequestAuthentication, Namespace: ns, Name: name, CreationTimestamp: t0}, Spec: spec}
}

// staticKeys is a KeySets over a fixed map issuer|uri → jwks.
type staticKeys map[string]string

func (s staticKeys) JWKS(issuer, uri string) (string, bool) {
	v, ok := s[issuer+"|"+uri]
	return v, ok
}

func TestJWTAuthnGolden(t *testing.T) {
	rsaKey, ecKey := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	one := ra("ns", "one", nil, &security.JWTRule{Issuer: "https://issuer.example", Jwks: authntest.PublicJWKS(t, rsaKey)})
	full := ra(rootNS, "full", nil,
		&security.JWTRule{
			Issuer: "https://b.example", Audiences: []string{"api", "web"}, JwksUri: "https://b.example/keys",
			FromHeaders: []*security.JWTHeader{{Name: "x-jwt", Prefix: "Token "}}, FromParams: []string{"tok"}, FromCookies: []string{"session"},
			OutputPayloadToHeader: "x-jwt-payload", ForwardOriginalToken: true,
			OutputClaimToHeaders: []*security.ClaimToHeader{{Header: "x-sub", Claim: "sub"}},
			SpaceDelimitedClaims: []string{"roles", "scope"}, Timeout: durationpb.New(3 * time.Second),
		},
		&security.JWTRule{Issuer: "https://a.example"}, // discovery, unavailable
	)
	keys := staticKeys{"https://b.example|https://b.example/keys": authntest.PublicJWKS(t, ecKey)}
	required := ra("ns", "required", nil,
		&security.JWTRule{Issuer: "https://issuer.example", Jwks: authntest.PublicJWKS(t, rsaKey)},
		&security.JWTRule{JwksUri: "https://b.example/keys", FromHeaders: []*security.JWTHeader{{Name: "x-device"}}, Presence: security.JWTRule_REQUIRED},
	)
	keys["|https://b.example/keys"] = authntest.PublicJWKS(t, ecKey)
	cases := map[string][]*mesh.Config{"jwt-single": {one}, "jwt-multi": {full, one}, "jwt-required": {required}}
	for name, pols := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, findings := JWTAuthn(pols, keys)
			mustValidate(t, cfg)
			mustValidate(t, JWTFilter(cfg))
			golden(t, name, cfg)
			if name == "jwt-multi" && (len(findings) != 1 || findings[0].Reason != ReasonJWKSUnavailable) {
				t.Errorf("findings = %v, want one JWKSUnavailable for a.example", findings)
			}
			if (name == "jwt-single" || name == "jwt-required") && len(findings) != 0 {
				t.Errorf("findings = %v", findings)
			}
		})
	}
	if cfg, _ := JWTAuthn(nil, keys); cfg != nil || JWTFilter(cfg) != nil {
		t.Error("no rules must give no filter")
	}
}

func bearer(tok string) TokenRequest {
	return TokenRequest{Method: "GET", Headers: map[string]string{"authorization": "Bearer " + tok}}
}

func TestAuthenticateTokens(t *testing.T) {
	rsaKey, ecKey, rotated := authntest.Key(t, "rsa"), authntest.Key(t, "ec"), authntest.Key(t, "rsa-rotated")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	const iss = "https://issuer.example"
	pol := ra("ns", "jwt", nil, &security.JWTRule{Issuer: iss, Audiences: []string{"api"}, JwksUri: "https://issuer.example/jwks"})
	good := authntest.Claims{Issuer: iss, Subject: "alice", Audience: []string{"api"}, IssuedAt: now, Expiry: now.Add(time.Hour)}
	with := func(f func(*authntest.Claims)) authntest.Claims { c := good; f(&c); return c }
	keys := staticKeys{iss + "|https://issuer.example/jwks": authntest.PublicJWKS(t, rsaKey, ecKey)}
	cfg, _ := JWTAuthn([]*mesh.Config{pol}, keys)
	failClosed, _ := JWTAuthn([]*mesh.Config{pol}, staticKeys{})

	cases := []struct {
		name    string
		cfg     any
		req     TokenRequest
		wantErr error
		wantPr  string
	}{
		{name: "valid RS256", req: bearer(authntest.Token(t, rsaKey, good)), wantPr: iss + "/alice"},
		{name: "valid ES256", req: bearer(authntest.Token(t, ecKey, good)), wantPr: iss + "/alice"},
		{name: "no token passes", req: TokenRequest{Method: "GET"}},
		{name: "expired", req: bearer(authntest.Token(t, rsaKey, with(func(c *authntest.Claims) { c.Expiry = now.Add(-2 * time.Minute) }))), wantErr: ErrJWTInvalid},
		{name: "expired within skew", req: bearer(authntest.Token(t, rsaKey, with(func(c *authntest.Claims) { c.Expiry = now.Add(-30 * time.Second) }))), wantPr: iss + "/alice"},
		{name: "wrong issuer", req: bearer(authntest.Token(t, rsaKey, with(func(c *authntest.Claims) { c.Issuer = "https://evil.example" }))), wantErr: ErrJWTInvalid},
		{name: "wrong audience", req: bearer(authntest.Token(t, rsaKey, with(func(c *authntest.Claims) { c.Audience = []string{"other"} }))), wantErr: ErrJWTInvalid},
		{name: "unknown kid", req: bearer(authntest.Token(t, rotated, good)), wantErr: ErrJWTInvalid},
		{name: "garbage token", req: bearer("not.a.jwt"), wantErr: ErrJWTInvalid},
		{name: "token in default query param", req: TokenRequest{Method: "GET", Query: url.Values{"access_token": {authntest.Token(t, rsaKey, good)}}}, wantPr: iss + "/alice"},
		{name: "fail closed rejects a valid token", cfg: failClosed, req: bearer(authntest.Token(t, rsaKey, good)), wantErr: ErrJWTInvalid},
		{name: "fail closed lets token-less requests through", cfg: failClosed, req: TokenRequest{Method: "GET"}},
		{name: "cors preflight bypassed", req: TokenRequest{Method: "OPTIONS", Headers: map[string]string{
			"origin": "https://x", "access-control-request-method": "GET", "authorization": "Bearer junk"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = failClosed
			}
			got, err := Authenticate(c, tc.req, now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && got.Principal != tc.wantPr {
				t.Errorf("principal = %q, want %q", got.Principal, tc.wantPr)
			}
		})
	}
}

func TestAuthenticateMultipleProviders(t *testing.T) {
	rsaKey, ecKey := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	pols := []*mesh.Config{
		ra("ns", "a", nil, &security.JWTRule{Issuer: "https://a.example", Jwks: authntest.PublicJWKS(t, rsaKey)}),
		ra("ns", "b", nil, &security.JWTRule{Issuer: "https://b.example", Jwks: authntest.PublicJWKS(t, ecKey),
			FromHeaders: []*security.JWTHeader{{Name: "x-b-token"}}}),
	}
	cfg, _ := JWTAuthn(pols, nil)
	exp := now.Add(time.Hour)
	tokA := authntest.Token(t, rsaKey, authntest.Claims{Issuer: "https://a.example", Subject: "a", Expiry: exp})
	tokB := authntest.Token(t, ecKey, authntest.Claims{Issuer: "https://b.example", Subject: "b", Expiry: exp})
	if a, err := Authenticate(cfg, bearer(tokA), now); err != nil || a.Principal != "https://a.example/a" {
		t.Errorf("issuer a: %v %v", a, err)
	}
	if a, err := Authenticate(cfg, TokenRequest{Headers: map[string]string{"x-b-token": tokB}}, now); err != nil || a.Principal != "https://b.example/b" {
		t.Errorf("issuer b from its header: %v %v", a, err)
	}
	// A token of issuer b in a's location is present and invalid for a.
	if _, err := Authenticate(cfg, bearer(tokB), now); !errors.Is(err, ErrJWTInvalid) {
		t.Errorf("b's token in a's header: err = %v, want invalid", err)
	}
	if _, err := Authenticate(cfg, TokenRequest{}, now); err != nil {
		t.Errorf("no token: %v", err)
	}
}

func TestRequestAuthsFor(t *testing.T) {
	rule := &security.JWTRule{Issuer: "i"}
	gw := ra("gw-ns", "gw", nil, rule)
	gw.Spec.(*security.RequestAuthentication).TargetRefs = []*typev1beta1.PolicyTargetReference{{Group: GatewayGroup, Kind: GatewayKind, Name: "ingress"}}
	svcRef := ra("ns", "svc-ref", nil, rule)
	svcRef.Spec.(*security.RequestAuthentication).TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "x"}}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{
		ra(rootNS, "mesh", nil, rule), ra(rootNS, "root-sel", app, rule), ra("ns", "all", nil, rule),
		ra("ns", "sel", app, rule), ra("ns", "other-sel", map[string]string{"app": "b"}, rule), ra("other", "x", nil, rule),
		gw, svcRef,
	})
	names := func(cs []*mesh.Config) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Namespace+"/"+c.Name)
		}
		return strings.Join(out, ",")
	}
	got := names(RequestAuthsFor(snap, &mesh.Proxy{Type: mesh.ProxySidecar, Namespace: "ns", Labels: mesh.Labels(app)}))
	if want := "istio-system/mesh,istio-system/root-sel,ns/all,ns/sel"; got != want {
		t.Errorf("sidecar: got %s, want %s", got, want)
	}
	got = names(RequestAuthsFor(snap, &mesh.Proxy{Type: mesh.ProxyRouter, Namespace: "gw-ns", Labels: mesh.Labels{GatewayNameLabel: "ingress"}}))
	if want := "gw-ns/gw,istio-system/mesh"; got != want {
		t.Errorf("gateway: got %s, want %s", got, want)
	}
	var reasons []Reason
	for _, f := range RequestAuthFindings(snap, staticKeys{"i|": `{"keys":[]}`}) {
		if f.Object.Name == "svc-ref" {
			reasons = append(reasons, f.Reason)
		}
	}
	if len(reasons) != 1 || reasons[0] != ReasonTargetRefIgnored {
		t.Errorf("svc-ref findings = %v", reasons)
	}
}

func TestRequestAuthFindingsTCPPorts(t *testing.T) {
	se := &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "ns", Name: "svc", CreationTimestamp: t0}, Spec: serviceEntry("svc.ns", app)}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{
		weConfig("ns", "w1", "10.0.0.1", app), se,
		ra("ns", "jwt", app, &security.JWTRule{Issuer: "i", Jwks: authntest.PublicJWKS(t, authntest.Key(t, "ec"))}),
	})
	fs := RequestAuthFindings(snap, nil)
	if len(fs) != 1 || fs[0].Reason != ReasonHTTPOnlyOnTCP || !strings.Contains(fs[0].Message, "port 5432") {
		t.Fatalf("findings = %v, want one HTTP-only finding for the TCP port 5432", fs)
	}
}

func TestNormalizeJWKS(t *testing.T) {
	rsaKey, ecKey := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	priv, _ := json.Marshal(rsaKey)
	cases := []struct {
		name    string
		in      string
		kids    []string
		wantErr bool
	}{
		{name: "rsa and ec", in: authntest.PublicJWKS(t, rsaKey, ecKey), kids: []string{"ward-test-ec", "ward-test-rsa"}},
		{name: "private key reduced to public", in: `{"keys":[` + string(priv) + `]}`, kids: []string{"ward-test-rsa"}},
		{name: "symmetric only", in: `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, wantErr: true},
		{name: "encryption key only", in: `{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`, wantErr: true},
		{name: "not json", in: `<html>`, wantErr: true},
		{name: "no keys member", in: `{"kty":"RSA"}`, wantErr: true},
		{name: "empty", in: `{"keys":[]}`, wantErr: true},
		{name: "fail-closed constant parses", in: FailClosedJWKS, kids: []string{"ward-fail-closed-no-key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NormalizeJWKS([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidJWKS) {
					t.Errorf("error %v does not wrap ErrInvalidJWKS", err)
				}
				return
			}
			if strings.Join(n.KeyIDs, ",") != strings.Join(tc.kids, ",") {
				t.Errorf("kids = %v, want %v", n.KeyIDs, tc.kids)
			}
			if strings.Contains(n.JSON, `"d"`) {
				t.Error("normalized JWKS leaks private key material")
			}
		})
	}
}

func TestFailClosedJWKSVerifiesNoToken(t *testing.T) {
	// A token claiming the fail-closed kid, signed by some other key.
	k := authntest.Key(t, "rsa")
	c, _ := k.Clone()
	_ = c.Set(jwk.KeyIDKey, "ward-fail-closed-no-key")
	_ = c.Set(jwk.AlgorithmKey, jwa.RS256())
	tok := authntest.Token(t, c, authntest.Claims{Issuer: "i", Subject: "s", Expiry: time.Now().Add(time.Hour)})
	cfg, _ := JWTAuthn([]*mesh.Config{ra("ns", "x", nil, &security.JWTRule{Issuer: "i", JwksUri: "https://i/keys"})}, nil)
	if _, err := Authenticate(cfg, bearer(tok), time.Now()); !errors.Is(err, ErrJWTInvalid) {
		t.Fatalf("token against the fail-closed JWKS: err = %v, want invalid", err)
	}
}
