package extauthz

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/wardmesh/ward/authz"

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

// loadPolicies is test/bench's load shape: a mesh-wide DENY, then n-1
// ALLOW policies on principals, methods, path prefixes and a header for
// app=cart in shop; loadCheck matches the ninth.
func loadPolicies(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: istio-system}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin\", \"/admin/*\"]}}]}]\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-%04d, namespace: shop}\nspec:\n  selector: {matchLabels: {app: cart}}\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/team-%d/sa/*\"]}}]\n    to: [{operation: {methods: [\"GET\", \"POST\"], paths: [\"/api/v%d/*\"]}}]\n    when: [{key: \"request.headers[x-tenant]\", values: [\"tenant-%d\"]}]\n", i, i, i, i)
	}
	return b.String()
}

func loadCheck(i int) *authv3.CheckRequest {
	path := fmt.Sprintf("/api/v9/items/%d", i%100)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/team-9/sa/web", Address: addr("10.0.0.1", 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.2", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: fmt.Sprint(i), Method: "GET", Path: path, Host: "cart.shop.svc.cluster.local", Protocol: "HTTP/2",
			Headers: map[string]string{":method": "GET", ":path": path, ":authority": "cart.shop.svc.cluster.local", "x-tenant": "tenant-9",
				"user-agent": "ward-bench", "accept": "application/json", "x-request-id": fmt.Sprintf("req-%d", i)}}},
		ContextExtensions: map[string]string{authz.ContextNamespace: "shop", authz.ContextLabels: `{"app":"cart"}`},
	}}
}

// BenchmarkCheckLoad is Check without the transport on test/bench's load
// shape (BenchmarkExtAuthzLoad), decision cache off: what the server
// spends per check besides gRPC.
func BenchmarkCheckLoad(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			s := newServer(b, Config{Timeout: time.Second, DecisionCache: -1}, "", loadPolicies(n))
			reqs := make([]*authv3.CheckRequest, 100)
			for i := range reqs {
				reqs[i] = loadCheck(i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			cpu0 := processCPU()
			for b.Loop() {
				resp, err := s.Check(ctx, reqs[i%len(reqs)])
				if err != nil || resp.GetStatus().GetCode() != 0 {
					b.Fatal(resp, err)
				}
				i++
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the process's user+system CPU time (all threads, GC
// included): per op, the figure that matters on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
