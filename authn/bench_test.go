package authn

import (
	"fmt"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
)

// BenchmarkPeerPolicyFor: 200 namespaces × (1 namespace + 5 workload
// policies) plus mesh policies; one workload's effective policy.
func BenchmarkPeerPolicyFor(b *testing.B) {
	var cfgs []*mesh.Config
	cfgs = append(cfgs, pa(rootNS, "mesh", 0, nil, strict, nil))
	for n := range 200 {
		ns := fmt.Sprintf("ns%d", n)
		cfgs = append(cfgs, pa(ns, "default", n, nil, permissive, nil))
		for w := range 5 {
			cfgs = append(cfgs, pa(ns, fmt.Sprintf("w%d", w), w, map[string]string{"app": fmt.Sprintf("a%d", w)}, strict,
				map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: disable}))
		}
	}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
	labels := mesh.Labels{"app": "a3"}
	b.ReportAllocs()
	for b.Loop() {
		if PeerPolicyFor(snap, "ns100", labels).ModeFor(8080) != ModeDisable {
			b.Fatal("wrong mode")
		}
	}
}

// BenchmarkJWTAuthn: the filter config for 3 policies × 2 rules.
func BenchmarkJWTAuthn(b *testing.B) {
	jwks := authntest.PublicJWKS(b, authntest.Key(b, "rsa"), authntest.Key(b, "ec"))
	var pols []*mesh.Config
	for i := range 3 {
		pols = append(pols, ra("ns", fmt.Sprintf("p%d", i), nil,
			&security.JWTRule{Issuer: fmt.Sprintf("https://a%d.example", i), Jwks: jwks},
			&security.JWTRule{Issuer: fmt.Sprintf("https://b%d.example", i), JwksUri: "https://keys.example"}))
	}
	keys := staticKeys{}
	for i := range 3 {
		keys[fmt.Sprintf("https://b%d.example|https://keys.example", i)] = jwks
	}
	b.ReportAllocs()
	for b.Loop() {
		if cfg, _ := JWTAuthn(pols, keys); len(cfg.GetProviders()) != 6 {
			b.Fatal("providers")
		}
	}
}

// BenchmarkAuthenticate: one RS256 token against a single provider (the
// proxyless path; Envoy does this natively for sidecars).
func BenchmarkAuthenticate(b *testing.B) {
	k := authntest.Key(b, "rsa")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	cfg, _ := JWTAuthn([]*mesh.Config{ra("ns", "p", nil, &security.JWTRule{Issuer: "https://i.example", Jwks: authntest.PublicJWKS(b, k)})}, nil)
	req := bearer(authntest.Token(b, k, authntest.Claims{Issuer: "https://i.example", Subject: "s", Expiry: now.Add(time.Hour)}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Authenticate(cfg, req, now); err != nil {
			b.Fatal(err)
		}
	}
}
