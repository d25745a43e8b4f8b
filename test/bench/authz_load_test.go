package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
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
// loopback with an open-loop generator at a fixed rate and reports
// throughput, p50/p99/p99.9 from send and from the scheduled send time
// (so a stalled server cannot hide its queueing), and CPU per request of
// the server (a child process, GOMAXPROCS=2) and of the generator.
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
				srv := startAuthzServer(b, policies, cache.size)
				client := dial(b, srv.addr)
				warm(b, client)
				cpu0 := srv.cpu(b)
				b.ResetTimer()
				res := runLoad(client, rps, secs)
				b.StopTimer()
				res.serverCPU = srv.cpu(b) - cpu0
				if res.errors > 0 || res.denied > 0 {
					b.Fatalf("%d errors, %d denials (every request should be allowed)", res.errors, res.denied)
				}
				b.ReportMetric(res.achieved, "req/s")
				b.ReportMetric(float64(res.p(0.50).Microseconds()), "p50_µs")
				b.ReportMetric(float64(res.p(0.99).Microseconds()), "p99_µs")
				b.ReportMetric(float64(res.p(0.999).Microseconds()), "p99.9_µs")
				n := float64(len(res.lat))
				b.ReportMetric(float64(res.serverCPU.Microseconds())/n, "server_cpu_µs/req")
				b.ReportMetric(float64(res.cpu.Microseconds())/n, "client_cpu_µs/req")
				b.Logf("policies=%d target=%d rps achieved=%.0f rps n=%d | from send: p50=%v p99=%v p99.9=%v max=%v | from schedule: p50=%v p99=%v p99.9=%v | CPU per request: server %.0fµs, client %.0fµs",
					policies, rps, res.achieved, len(res.lat), res.p(0.5), res.p(0.99), res.p(0.999), res.max(),
					res.sp(0.5), res.sp(0.99), res.sp(0.999), float64(res.serverCPU.Microseconds())/n, float64(res.cpu.Microseconds())/n)
			})
		}
	}
}

const authzServerEnv = "WARD_AUTHZ_LOAD_SERVER"

// TestAuthzLoadServerProcess is the server side of BenchmarkExtAuthzLoad,
// run in a child process so that its CPU is measured alone; it is skipped
// in a normal test run. WARD_AUTHZ_LOAD_SERVER is "<policies>,<cache>".
func TestAuthzLoadServerProcess(t *testing.T) {
	spec := os.Getenv(authzServerEnv)
	if spec == "" {
		t.Skip("server process of BenchmarkExtAuthzLoad")
	}
	var policies, cache int
	if _, err := fmt.Sscanf(spec, "%d,%d", &policies, &cache); err != nil {
		t.Fatal(err)
	}
	s := extauthz.New(extauthz.Config{Timeout: time.Second, DecisionCache: cache})
	cfgs, _, err := schema.DecodeAll([]byte(authzLoadPolicies(policies)), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	if prof := os.Getenv("WARD_AUTHZ_LOAD_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	// Each line on stdin asks for the CPU used so far; EOF stops.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Printf("CPU %d\n", processCPU().Nanoseconds())
	}
	cancel()
	<-done
}

// authzServer is the child process.
type authzServer struct {
	addr  string
	stdin io.WriteCloser
	lines chan string
}

func startAuthzServer(b *testing.B, policies, cache int) *authzServer {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestAuthzLoadServerProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", authzServerEnv, policies, cache), "GOMAXPROCS=2")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	srv := &authzServer{stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			srv.lines <- sc.Text()
		}
		close(srv.lines)
	}()
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	select {
	case l := <-srv.lines:
		addr, ok := strings.CutPrefix(l, "ADDR ")
		if !ok {
			b.Fatalf("server process said %q", l)
		}
		srv.addr = addr
	case <-time.After(30 * time.Second):
		b.Fatal("server process did not start within 30s")
	}
	return srv
}

// cpu asks the child for its CPU time so far.
func (s *authzServer) cpu(b *testing.B) time.Duration {
	if _, err := io.WriteString(s.stdin, "cpu\n"); err != nil {
		b.Fatal(err)
	}
	select {
	case l := <-s.lines:
		var ns int64
		if _, err := fmt.Sscanf(l, "CPU %d", &ns); err != nil {
			b.Fatalf("server process said %q", l)
		}
		return time.Duration(ns)
	case <-time.After(10 * time.Second):
		b.Fatal("server process did not report its CPU")
	}
	return 0
}

func dial(b *testing.B, addr string) authv3.AuthorizationClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
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
	cpu            time.Duration // this (client) process's CPU during the run
	serverCPU      time.Duration // the server process's CPU during the run
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
