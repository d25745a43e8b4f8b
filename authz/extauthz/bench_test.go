package extauthz

import (
	"context"
	"testing"
	"time"

	"github.com/wardmesh/ward/authn/authntest"
)

// BenchmarkCheck measures Check without the gRPC transport: request
// conversion, OPA evaluation, response building.
func BenchmarkCheck(b *testing.B) {
	s := newServer(b, Config{Timeout: time.Second}, "", policies)
	req := check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkProxylessJWTCheck is BenchmarkCheck for a proxyless check
// carrying an RS256 token the server verifies itself (memoised jwt_authn
// config; signature verification per check).
func BenchmarkProxylessJWTCheck(b *testing.B) {
	rsa := authntest.Key(b, "rsa")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys := &keySets{sets: map[string]string{jwtIssuer + "|" + jwtIssuer + "/jwks": authntest.PublicJWKS(b, rsa)}}
	s := newServer(b, Config{Timeout: time.Second, Keys: keys, Clock: fixedClock{now}}, "", jwtPolicies)
	req := proxylessCheck(authntest.Token(b, rsa, authntest.Claims{Issuer: jwtIssuer, Subject: "alice", Audience: []string{"cart"}, Expiry: now.Add(time.Hour)}), true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err)
		}
	}
}
