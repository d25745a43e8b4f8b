package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// authzLoadPolicies is a realistic workload: a mesh-wide DENY, n-1
// namespace ALLOW policies on principals, methods, paths and a header, the
// request matching the last one.
func authzLoadPolicies(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: istio-system}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin\", \"/admin/*\"]}}]}]\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-%04d, namespace: shop}\nspec:\n  selector: {matchLabels: {app: cart}}\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/team-%d/sa/*\"]}}]\n    to: [{operation: {methods: [\"GET\", \"POST\"], paths: [\"/api/v%d/*\"]}}]\n    when: [{key: \"request.headers[x-tenant]\", values: [\"tenant-%d\"]}]\n", i, i%n, i, i)
	}
	return b.String()
}

func loadSnapshot(b *testing.B, src string) *mesh.Snapshot {
	docs, err := schema.SplitYAML([]byte(src))
	if err != nil {
		b.Fatal(err)
	}
	var cfgs []*mesh.Config
	for _, d := range docs {
		dec, err := schema.Decode(d, mesh.Source{})
		if err != nil {
			b.Fatal(err)
		}
		cfgs = append(cfgs, dec.Config)
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
}

func loadRequest(i int) *authv3.CheckRequest {
	sock := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	path := fmt.Sprintf("/api/v9/items/%d", i%100)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/team-9/sa/web", Address: sock("10.0.0.1", 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: sock("10.0.0.2", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: fmt.Sprint(i), Method: "GET", Path: path, Host: "cart.shop.svc.cluster.local", Protocol: "HTTP/2",
			Headers: map[string]string{":method": "GET", ":path": path, ":authority": "cart.shop.svc.cluster.local", "x-tenant": "tenant-9",
				"user-agent": "ward-bench", "accept": "application/json", "x-request-id": fmt.Sprintf("req-%d", i)}}},
		ContextExtensions: map[string]string{authz.ContextNamespace: "shop", authz.ContextLabels: `{"app":"cart"}`},
	}}
}

// BenchmarkExtAuthzLoad drives Ward's ext_authz server over gRPC on
// loopback with an open-loop generator at a fixed rate (latency counted
// from each request's scheduled send time, so a stalled server cannot hide
// its queueing) and reports throughput and p50/p99/p99.9. The server runs
// in this process; the generator shares the machine's CPUs with it.
// WARD_AUTHZ_LOAD_SECONDS sets the duration per rate (default 5).
func BenchmarkExtAuthzLoad(b *testing.B) {
	secs := 5 * time.Second
	if v := os.Getenv("WARD_AUTHZ_LOAD_SECONDS"); v != "" {
		d, err := time.ParseDuration(v + "s")
		if err != nil {
			b.Fatal(err)
		}
		secs = d
	}
	for _, cache := range []struct {
		name string
		size int
	}{{"eval", -1}, {"cache", 0}} {
		for _, rps := range []int{1000, 5000} {
			policies := 10
			b.Run(fmt.Sprintf("%s/policies=%d/rps=%d", cache.name, policies, rps), func(b *testing.B) {
				client := startAuthz(b, loadSnapshot(b, authzLoadPolicies(policies)), cache.size)
				warm(b, client)
				b.ResetTimer()
				res := runLoad(client, rps, secs)
				b.StopTimer()
				if res.errors > 0 || res.denied > 0 {
					b.Fatalf("%d errors, %d denials (every request should be allowed)", res.errors, res.denied)
				}
				b.ReportMetric(res.achieved, "req/s")
				b.ReportMetric(float64(res.p(0.50).Microseconds()), "p50_µs")
				b.ReportMetric(float64(res.p(0.99).Microseconds()), "p99_µs")
				b.ReportMetric(float64(res.p(0.999).Microseconds()), "p99.9_µs")
				b.ReportMetric(float64(res.cpu.Microseconds())/float64(len(res.lat)), "cpu_µs/req")
				b.Logf("policies=%d target=%d rps achieved=%.0f rps n=%d | from send: p50=%v p99=%v p99.9=%v max=%v | from schedule: p50=%v p99=%v p99.9=%v | process CPU %.0fµs/req (server+client)",
					policies, rps, res.achieved, len(res.lat), res.p(0.5), res.p(0.99), res.p(0.999), res.max(),
					res.sp(0.5), res.sp(0.99), res.sp(0.999), float64(res.cpu.Microseconds())/float64(len(res.lat)))
			})
		}
	}
}

func startAuthz(b *testing.B, snap *mesh.Snapshot, cache int) authv3.AuthorizationClient {
	s, err := extauthz.New(extauthz.Config{Timeout: time.Second, DecisionCache: cache})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Update(snap); err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return authv3.NewAuthorizationClient(conn)
}

func warm(b *testing.B, c authv3.AuthorizationClient) {
	for i := 0; i < 200; i++ {
		resp, err := c.Check(context.Background(), loadRequest(i))
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatalf("warm-up check %d: %v %v", i, resp, err)
		}
	}
}

// loadResult holds latencies measured from each request's send (service
// time) and from its scheduled time (which adds the generator's and the
// machine's queueing: on a shared machine the dispatcher itself wakes late).
type loadResult struct {
	lat, sched     []time.Duration
	errors, denied int64
	achieved       float64
	cpu            time.Duration // process CPU (server and client) during the run
}

func (r *loadResult) sp(q float64) time.Duration {
	return r.sched[min(len(r.sched)-1, int(q*float64(len(r.sched))))]
}

func (r *loadResult) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

func (r *loadResult) max() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[len(r.lat)-1]
}

// runLoad sends rps requests per second for d: a dispatcher releases each
// request at its scheduled time to a pool of workers.
func runLoad(c authv3.AuthorizationClient, rps int, d time.Duration) *loadResult {
	total := int(d.Seconds() * float64(rps))
	interval := time.Second / time.Duration(rps)
	type job struct {
		i     int
		sched time.Time
	}
	jobs := make(chan job, total)
	lat := make([]time.Duration, total)
	sched := make([]time.Duration, total)
	var errs, denied atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 128; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				req := loadRequest(j.i)
				sent := time.Now()
				resp, err := c.Check(context.Background(), req)
				lat[j.i] = time.Since(sent)
				sched[j.i] = time.Since(j.sched)
				switch {
				case err != nil:
					errs.Add(1)
				case resp.GetStatus().GetCode() != 0:
					denied.Add(1)
				}
			}
		}()
	}
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < total; {
		now := time.Now()
		for ; i < total; i++ {
			sched := start.Add(time.Duration(i) * interval)
			if sched.After(now) {
				break
			}
			jobs <- job{i, sched}
		}
		if i < total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	sort.Slice(sched, func(a, b int) bool { return sched[a] < sched[b] })
	return &loadResult{lat: lat, sched: sched, errors: errs.Load(), denied: denied.Load(), achieved: float64(total) / elapsed.Seconds(), cpu: cpu}
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
