package extauthz

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"

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

// BenchmarkCheckCodec is BenchmarkCheckLoad with what gRPC's codec does
// around Check: decode the request's bytes, check, encode the response.
// codec=proto is gRPC's proto codec and Check (Register's servers, and
// Serve before wire.go); codec=wire is Serve's wireCodec and checkWire.
func BenchmarkCheckCodec(b *testing.B) {
	protoCodec := encoding.GetCodecV2("proto")
	paths := []struct {
		name  string
		codec encoding.CodecV2
		check func(*Server, context.Context, *authv3.CheckRequest) any
	}{
		{"proto", protoCodec, func(s *Server, ctx context.Context, r *authv3.CheckRequest) any {
			resp, _ := s.Check(ctx, r)
			return resp
		}},
		{"wire", newWireCodec(), (*Server).checkWire},
	}
	for _, n := range []int{10, 100} {
		s := newServer(b, Config{Timeout: time.Second, DecisionCache: -1}, "", loadPolicies(n))
		if resp, err := s.Check(context.Background(), loadCheck(0)); err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err) // and the workload is prepared before either path is timed
		}
		raw := make([]mem.BufferSlice, 100)
		for i := range raw {
			var err error
			if raw[i], err = protoCodec.Marshal(loadCheck(i)); err != nil {
				b.Fatal(err)
			}
		}
		for _, p := range paths {
			b.Run(fmt.Sprintf("policies=%d/codec=%s", n, p.name), func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					req := new(authv3.CheckRequest)
					if err := p.codec.Unmarshal(raw[i%len(raw)], req); err != nil {
						b.Fatal(err)
					}
					out, err := p.codec.Marshal(p.check(s, ctx, req))
					if err != nil {
						b.Fatal(err)
					}
					out.Free()
					i++
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
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

// swapPolicies is a mesh of 100 WorkloadEntries (app=w000…w099 in shop)
// and 100 policies: a mesh-wide DENY, 49 namespace-wide ALLOWs and 50
// ALLOWs each selecting one of w000…w049 — 51 distinct applicable sets of
// 50–51 policies. variant changes every ALLOW's header value, so each
// variant compiles and prepares afresh.
func swapPolicies(variant int) string {
	var b strings.Builder
	b.WriteString("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: istio-system}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin\", \"/admin/*\"]}}]}]\n")
	for i := range 100 {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w%03d, namespace: shop}\nspec: {address: 10.1.0.%d, labels: {app: w%03d}}\n", i, i+1, i)
	}
	for i := 1; i < 100; i++ {
		sel := ""
		if i >= 50 {
			sel = fmt.Sprintf("  selector: {matchLabels: {app: w%03d}}\n", i-50)
		}
		fmt.Fprintf(&b, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-%04d, namespace: shop}\nspec:\n%s  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/team-%d/sa/*\"]}}]\n    to: [{operation: {methods: [\"GET\", \"POST\"], paths: [\"/api/v%d/*\"]}}]\n    when: [{key: \"request.headers[x-tenant]\", values: [\"tenant-%d-%d\"]}]\n", i, sel, i, i, i, variant)
	}
	return b.String()
}

// BenchmarkSnapshotSwap measures a policy change on a server that knows
// 100 workloads × 100 policies (swapPolicies): from Update (compile) until
// the new engine decides, every workload prepared in the background
// (PrepareConcurrency 1 and 2) — how long the previous policies keep
// deciding. Each iteration changes every policy, so nothing is reused.
func BenchmarkSnapshotSwap(b *testing.B) {
	snaps := []*mesh.Snapshot{snapshot(b, "", swapPolicies(0)), snapshot(b, "", swapPolicies(1))}
	for _, c := range []int{1, 2} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) { benchmarkSwap(b, snaps, c) })
	}
}

func benchmarkSwap(b *testing.B, snaps []*mesh.Snapshot, concurrency int) {
	s := New(Config{Timeout: time.Minute, PreviousPolicyBound: time.Hour, PrepareConcurrency: concurrency})
	defer s.Close()
	promoted := make(chan *authz.Engine, 1)
	s.warm.hooks.promoted = func(e *authz.Engine) { promoted <- e }
	if err := s.Update(snaps[1]); err != nil {
		b.Fatal(err)
	}
	<-promoted // the first snapshot decides at once
	var compile, total time.Duration
	prepared0 := counter(s.metrics.prepared)
	i := 0
	cpu0 := processCPU()
	for b.Loop() {
		start := time.Now()
		if err := s.Update(snaps[i%2]); err != nil {
			b.Fatal(err)
		}
		compile += time.Since(start)
		if e := <-promoted; e.Snapshot() != snaps[i%2] {
			b.Fatal("swapped in the wrong snapshot")
		}
		total += time.Since(start)
		i++
	}
	b.ReportMetric(float64(compile.Milliseconds())/float64(b.N), "compile-ms/op")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "swap-ms/op")
	b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric((counter(s.metrics.prepared)-prepared0)/float64(b.N), "workloads/op")
}
