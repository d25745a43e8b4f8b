package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
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

// The load generator measures any ext_authz v3 gRPC server with the same
// requests and the same open-loop schedule. Flags (after -args) or their
// environment variables choose what it drives:
//
//	-authz.targets   WARD_AUTHZ_TARGETS   ward,opa-envoy,null,addr (default ward): measured in
//	                                      turn, interleaved per policy count and rate; null is
//	                                      a gRPC server that only looks its answer up (the floor)
//	-authz.addr      WARD_AUTHZ_ADDR      the "addr" target: a server already listening
//	-authz.pid       WARD_AUTHZ_PID       its process id, to read its CPU from /proc (0: not reported)
//	-authz.opa-envoy WARD_OPA_ENVOY_PLUGIN an opa-envoy-plugin binary (hack/build-opa-envoy-plugin.sh)
//	                                      for the "opa-envoy" target, run with authzLoadRego
//	-authz.policies  WARD_AUTHZ_POLICIES  policy counts (default 10,100)
//	-authz.rps       WARD_AUTHZ_RPS       target rates (default 1000,5000)
//	-authz.cache     WARD_AUTHZ_CACHE     Ward's decision cache: off, on or off,on (default off)
//	-authz.seconds   WARD_AUTHZ_LOAD_SECONDS duration per run (default 5)
//
// Servers started here run in a child process with GOMAXPROCS=2; the CPU
// per check is the child's user+system time over the run from /proc,
// divided by the checks sent. Before the load, every target answers the
// same probes (authzProbes) and must agree with their expected decisions,
// so the servers compared decide identically.
var (
	authzTargets  = flag.String("authz.targets", envOr("WARD_AUTHZ_TARGETS", "ward"), "ext_authz servers to measure: ward, opa-envoy, addr")
	authzAddr     = flag.String("authz.addr", os.Getenv("WARD_AUTHZ_ADDR"), "address of a running ext_authz server (target addr)")
	authzPID      = flag.Int("authz.pid", envInt("WARD_AUTHZ_PID", 0), "pid of the server at -authz.addr (CPU from /proc; 0: not reported)")
	opaEnvoyBin   = flag.String("authz.opa-envoy", os.Getenv("WARD_OPA_ENVOY_PLUGIN"), "opa-envoy-plugin binary (target opa-envoy)")
	authzPolicies = flag.String("authz.policies", envOr("WARD_AUTHZ_POLICIES", "10,100"), "policy counts")
	authzRates    = flag.String("authz.rps", envOr("WARD_AUTHZ_RPS", "1000,5000"), "target request rates")
	authzCache    = flag.String("authz.cache", envOr("WARD_AUTHZ_CACHE", "off"), "Ward's decision cache: off, on, off,on")
	authzSeconds  = flag.Float64("authz.seconds", envFloat("WARD_AUTHZ_LOAD_SECONDS", 5), "seconds per run")
)

// BenchmarkExtAuthzLoad drives each target over gRPC on loopback with an
// open-loop generator at a fixed rate and reports throughput, p50/p99/p99.9
// from send and from the scheduled send time (so a stalled server cannot
// hide its queueing), and CPU per check of the server and of the generator.
func BenchmarkExtAuthzLoad(b *testing.B) {
	secs := time.Duration(*authzSeconds * float64(time.Second))
	for _, policies := range ints(b, *authzPolicies) {
		for _, rps := range ints(b, *authzRates) {
			for _, target := range strings.Split(*authzTargets, ",") {
				for _, cache := range cacheModes(target) {
					name := fmt.Sprintf("target=%s/cache=%s/policies=%d/rps=%d", target, cache, policies, rps)
					b.Run(name, func(b *testing.B) { benchAuthzTarget(b, target, cache, policies, rps, secs) })
				}
			}
		}
	}
}

// cacheModes are the cache settings measured for a target: only Ward's
// cache is switchable.
func cacheModes(target string) []string {
	if target != "ward" {
		return []string{"n/a"}
	}
	return strings.Split(*authzCache, ",")
}

func benchAuthzTarget(b *testing.B, target, cache string, policies, rps int, secs time.Duration) {
	srv := startTarget(b, target, cache, policies)
	client := dial(b, srv.addr)
	probe(b, client, policies)
	warm(b, client)
	cpu0 := srv.cpu(b)
	b.ResetTimer()
	res := runLoad(client, rps, secs)
	b.StopTimer()
	res.serverCPU = srv.cpu(b) - cpu0
	if res.errors > 0 || res.denied > 0 {
		b.Fatalf("%d errors, %d denials (every request should be allowed)", res.errors, res.denied)
	}
	n := float64(len(res.lat))
	b.ReportMetric(res.achieved, "req/s")
	b.ReportMetric(float64(res.p(0.50).Microseconds()), "p50_µs")
	b.ReportMetric(float64(res.p(0.99).Microseconds()), "p99_µs")
	b.ReportMetric(float64(res.p(0.999).Microseconds()), "p99.9_µs")
	if srv.pid != 0 {
		b.ReportMetric(float64(res.serverCPU.Microseconds())/n, "server_cpu_µs/req")
	}
	b.ReportMetric(float64(res.cpu.Microseconds())/n, "client_cpu_µs/req")
	b.Logf("%s policies=%d target=%d rps achieved=%.0f rps n=%d | from send: p50=%v p99=%v p99.9=%v max=%v | from schedule: p50=%v p99=%v p99.9=%v | CPU per request: server %.1fµs, client %.1fµs",
		target, policies, rps, res.achieved, len(res.lat), res.p(0.5), res.p(0.99), res.p(0.999), res.max(),
		res.sp(0.5), res.sp(0.99), res.sp(0.999), float64(res.serverCPU.Microseconds())/n, float64(res.cpu.Microseconds())/n)
}

// authzProbes are checks with known decisions for the load policies with
// n policies; every target must answer each as expected.
func authzProbes(n int) []struct {
	name  string
	req   *authv3.CheckRequest
	allow bool
} {
	type probe = struct {
		name  string
		req   *authv3.CheckRequest
		allow bool
	}
	with := func(f func(h *authv3.AttributeContext_HttpRequest, a *authv3.AttributeContext)) *authv3.CheckRequest {
		r := loadRequest(7)
		f(r.Attributes.Request.Http, r.Attributes)
		return r
	}
	setPath := func(p string) func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
		return func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
			h.Path, h.Headers[":path"] = p, p
		}
	}
	last := n - 1
	return []probe{
		{"load request", loadRequest(7), true},
		{"post", with(func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
			h.Method, h.Headers[":method"] = "POST", "POST"
		}), true},
		{"delete", with(func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
			h.Method, h.Headers[":method"] = "DELETE", "DELETE"
		}), false},
		{"query", with(setPath("/api/v9/items?x=/admin")), true},
		{"admin", with(setPath("/admin")), false},
		{"admin subtree", with(setPath("/admin/users")), false},
		{"other version", with(setPath("/api/v8/items")), false},
		{"other tenant", with(func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
			h.Headers["x-tenant"] = "tenant-8"
		}), false},
		{"no tenant", with(func(h *authv3.AttributeContext_HttpRequest, _ *authv3.AttributeContext) {
			delete(h.Headers, "x-tenant")
		}), false},
		{"other team", with(func(_ *authv3.AttributeContext_HttpRequest, a *authv3.AttributeContext) {
			a.Source.Principal = "spiffe://cluster.local/ns/team-8/sa/web"
		}), false},
		{"last policy", with(func(h *authv3.AttributeContext_HttpRequest, a *authv3.AttributeContext) {
			p := fmt.Sprintf("/api/v%d/x", last)
			h.Path, h.Headers[":path"], h.Headers["x-tenant"] = p, p, fmt.Sprintf("tenant-%d", last)
			a.Source.Principal = fmt.Sprintf("spiffe://cluster.local/ns/team-%d/sa/api", last)
		}), true},
	}
}

func probe(b *testing.B, c authv3.AuthorizationClient, policies int) {
	for _, p := range authzProbes(policies) {
		resp, err := c.Check(context.Background(), p.req)
		if err != nil {
			b.Fatalf("probe %s: %v", p.name, err)
		}
		if got := resp.GetStatus().GetCode() == 0; got != p.allow {
			b.Fatalf("probe %s: allowed %t, want %t (%v)", p.name, got, p.allow, resp.GetStatus())
		}
	}
}

// authzLoadRego is authzLoadPolicies written by hand for opa-envoy-plugin
// (query data.envoy.authz.allow): the same DENY and ALLOW rules over its
// input document. Paths are matched without the query, as Ward matches
// them.
func authzLoadRego(n int) string {
	var b strings.Builder
	b.WriteString(`package envoy.authz

import rego.v1

default allow := false

http := input.attributes.request.http

path := split(http.path, "?")[0]

deny if path == "/admin"

deny if startswith(path, "/admin/")

allow if {
	not deny
	allowed
}
`)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, `
allowed if {
	startswith(input.attributes.source.principal, "spiffe://cluster.local/ns/team-%d/sa/")
	http.method in {"GET", "POST"}
	startswith(path, "/api/v%d/")
	http.headers["x-tenant"] == "tenant-%d"
}
`, i, i, i)
	}
	return b.String()
}

const authzServerEnv = "WARD_AUTHZ_LOAD_SERVER"

// TestAuthzLoadServerProcess is Ward's server for BenchmarkExtAuthzLoad,
// run in a child process so that its CPU is measured alone; it is skipped
// in a normal test run. WARD_AUTHZ_LOAD_SERVER is "<policies>,<cache>";
// it serves until stdin closes.
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
	if os.Getenv(authzNullEnv) != "" {
		go func() { done <- serveNull(ctx, lis, policies) }()
	} else {
		go func() { done <- s.Serve(ctx, lis) }()
	}
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
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	cancel()
	<-done
}

// authzNullEnv makes the child a null server: the same gRPC server
// settings as Ward's (extauthz.Server.Serve) answering from a table of
// the probes' decisions, with no policy evaluation — the transport's floor
// for CPU per check.
const authzNullEnv = "WARD_AUTHZ_LOAD_NULL"

type nullServer struct {
	authv3.UnimplementedAuthorizationServer
	deny map[string]bool // probe paths+principals+tenants that are denied
}

func serveNull(ctx context.Context, lis net.Listener, policies int) error {
	g := grpc.NewServer(grpc.NumStreamWorkers(uint32(32 * runtime.GOMAXPROCS(0))))
	ns := &nullServer{deny: map[string]bool{}}
	for _, p := range authzProbes(policies) {
		if !p.allow {
			ns.deny[nullKey(p.req)] = true
		}
	}
	authv3.RegisterAuthorizationServer(g, ns)
	go func() { <-ctx.Done(); g.Stop() }()
	return g.Serve(lis)
}

func nullKey(r *authv3.CheckRequest) string {
	h := r.GetAttributes().GetRequest().GetHttp()
	return h.GetMethod() + " " + h.GetPath() + " " + h.GetHeaders()["x-tenant"] + " " + r.GetAttributes().GetSource().GetPrincipal()
}

func (n *nullServer) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	c := int32(0)
	if n.deny[nullKey(r)] {
		c = 7 // PERMISSION_DENIED
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: c}}, nil
}

// authzServer is the server under load.
type authzServer struct {
	addr string
	pid  int // 0: unknown, CPU not measured
}

func startTarget(b *testing.B, target, cache string, policies int) *authzServer {
	switch target {
	case "ward":
		size := -1
		if cache == "on" {
			size = 0
		}
		return startWard(b, policies, size)
	case "opa-envoy":
		return startOPAEnvoy(b, policies)
	case "null":
		return startWard(b, policies, -1, authzNullEnv+"=1")
	case "addr":
		if *authzAddr == "" {
			b.Fatal("target addr needs -authz.addr or WARD_AUTHZ_ADDR")
		}
		return &authzServer{addr: *authzAddr, pid: *authzPID}
	}
	b.Fatalf("unknown target %q (ward, opa-envoy, null, addr)", target)
	return nil
}

func startWard(b *testing.B, policies, cache int, env ...string) *authzServer {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestAuthzLoadServerProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", authzServerEnv, policies, cache), "GOMAXPROCS=2")
	cmd.Env = append(cmd.Env, env...)
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
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "ADDR ")
		if !ok {
			b.Fatalf("server process said %q", l)
		}
		return &authzServer{addr: addr, pid: cmd.Process.Pid}
	case <-time.After(30 * time.Second):
		b.Fatal("server process did not start within 30s")
	}
	return nil
}

// startOPAEnvoy runs opa-envoy-plugin's envoy_ext_authz_grpc plugin on
// authzLoadRego(policies), decision logs off, and waits until it answers.
func startOPAEnvoy(b *testing.B, policies int) *authzServer {
	if *opaEnvoyBin == "" {
		b.Skip("target opa-envoy needs -authz.opa-envoy or WARD_OPA_ENVOY_PLUGIN (hack/build-opa-envoy-plugin.sh)")
	}
	dir := b.TempDir()
	policy := filepath.Join(dir, "policy.rego")
	if err := os.WriteFile(policy, []byte(authzLoadRego(policies)), 0o600); err != nil {
		b.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(*opaEnvoyBin, "run", "--server", "--addr="+httpAddr, "--log-level=error",
		"--set=plugins.envoy_ext_authz_grpc.addr="+grpcAddr,
		"--set=plugins.envoy_ext_authz_grpc.path=envoy/authz/allow",
		"--set=decision_logs.console=false", policy)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	client := dial(b, grpcAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Check(ctx, loadRequest(0))
		cancel()
		if err == nil {
			return &authzServer{addr: grpcAddr, pid: cmd.Process.Pid}
		}
		if time.Now().After(deadline) {
			b.Fatalf("opa-envoy-plugin did not answer within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cpu is the server's user+system CPU time so far (0 when its pid is
// unknown).
func (s *authzServer) cpu(b *testing.B) time.Duration {
	if s.pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / clockTicksPerS
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
	for i := 0; i < 1000; i++ {
		resp, err := c.Check(context.Background(), loadRequest(i))
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatalf("warm-up check %d: %v %v", i, resp, err)
		}
	}
}

func ints(b *testing.B, list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("bad number list %q: %v", list, err)
		}
		out = append(out, n)
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return f
	}
	return def
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
