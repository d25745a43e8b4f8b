package authz

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardmesh/ward/mesh"
)

// BenchPolicies returns n AuthorizationPolicies (as YAML) applying to
// app=bench in namespace bench: a root-namespace DENY, then ALLOW policies
// whose rules test principals, paths, methods and a header, of which only
// the last one matches BenchRequest.
func BenchPolicies(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
`)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-%04d, namespace: bench}
spec:
  selector: {matchLabels: {app: bench}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/team-%d/sa/*"]}}]
    to: [{operation: {methods: ["GET", "POST"], paths: ["/api/v%d/*"]}}]
    when: [{key: "request.headers[x-tenant]", values: ["tenant-%d"]}]
`, i, i, i, i)
	}
	return b.String()
}

func benchRequest() *Request {
	return &Request{
		Source:      Peer{IP: "10.0.0.1", Port: 40000, Principal: "spiffe://cluster.local/ns/team-0/sa/web"},
		Destination: Peer{IP: "10.0.0.2", Port: 8080},
		HTTP: &HTTPRequest{Method: "GET", Path: "/api/v0/items?page=2", Host: "bench.bench.svc",
			Headers: map[string]string{"x-tenant": "tenant-0", "user-agent": "bench", "accept": "*/*"}},
	}
}

// BenchmarkDecide measures one in-process decision on a workload with 1 to
// 1000 policies; the request matches none of the ALLOW rules, the worst
// case. eval: input build + OPA evaluation + decision, cache disabled;
// cached: the same request again, answered by the decision cache.
func BenchmarkDecide(b *testing.B) {
	for _, mode := range []struct {
		name  string
		cache int
	}{{"eval", -1}, {"cached", 0}} {
		for _, n := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/policies=%d", mode.name, n), func(b *testing.B) {
				benchDecide(b, n, mode.cache)
			})
		}
	}
}

func benchDecide(b *testing.B, n, cache int) {
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(b, BenchPolicies(n)))
	eng, err := NewEngine(snap, EngineConfig{Timeout: time.Minute, DecisionCache: cache})
	if err != nil {
		b.Fatal(err)
	}
	p, err := eng.For(context.Background(), "bench", mesh.Labels{"app": "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Policies()) != n {
		b.Fatalf("%d policies apply, want %d", len(p.Policies()), n)
	}
	req := benchRequest()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for b.Loop() {
		if _, err := p.Decide(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuMeter reports the process's CPU time (user+system, all threads: GC
// included) per op, the figure that matters on a shared machine, where
// ns/op also counts the time other jobs held the cores.
type cpuMeter time.Duration

func startCPU() cpuMeter { return cpuMeter(processCPU()) }

func (c cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-time.Duration(c))/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNewEngine measures compiling a snapshot's policies (validation,
// Rego generation, parsing and one OPA compile), done once per snapshot.
func BenchmarkNewEngine(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(b, BenchPolicies(n)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewEngine(snap, EngineConfig{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
