package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/benchmesh"
)

// The load harness runs Ward's xDS server in a child process (this test
// binary re-executed in server mode) fed by the real file source, so its
// CPU and memory are measured alone; the simulated ADS clients run here.

const xdsServerModeEnv = "WARD_XDS_LOAD_SERVER_DIR"

// xdsConnectProfileEnv names a file for a CPU profile of the server covering
// only the initial connect (first proxy dialled → all proxies ACKed);
// WARD_XDS_LOAD_CPUPROFILE profiles the server's whole life.
const xdsConnectProfileEnv = "WARD_XDS_LOAD_CONNECT_CPUPROFILE"

// TestXDSLoadServerProcess is the child's entry point; it is skipped in a
// normal test run.
func TestXDSLoadServerProcess(t *testing.T) {
	dir := os.Getenv(xdsServerModeEnv)
	if dir == "" {
		t.Skip("server process of BenchmarkXDSLoad")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// One source (loopback) opens every simulated proxy's stream: lift the
	// per-source stream cap the load would otherwise hit.
	srv := xds.NewServer(xds.Config{Log: slog.New(slog.DiscardHandler), Limits: xds.Limits{MaxStreamsPerSource: -1}})
	var opts []grpc.ServerOption
	if os.Getenv("WARD_XDS_LOAD_NO_CODEC") == "" { // set: gRPC's proto codec, for before/after runs
		opts = srv.ServerOptions()
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	var mu sync.Mutex
	src, err := file.New(file.Config{Dir: dir, Log: slog.New(slog.DiscardHandler), OnSnapshot: func(s *mesh.Snapshot) {
		mu.Lock()
		fmt.Printf("SNAPSHOT %d %s\n", time.Now().UnixNano(), s.Version())
		mu.Unlock()
		srv.Update(s)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if prof := os.Getenv("WARD_XDS_LOAD_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// "MEM" asks for the live heap after a full GC; "PROF START"/"PROF
		// STOP" bracket the connect profile; EOF (parent gone) exits.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "PROF START":
				f, err := os.Create(os.Getenv(xdsConnectProfileEnv))
				if err == nil {
					err = pprof.StartCPUProfile(f)
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "connect profile: %v\n", err)
				}
				mu.Lock()
				fmt.Printf("PROF started\n")
				mu.Unlock()
			case "PROF STOP":
				pprof.StopCPUProfile()
				mu.Lock()
				fmt.Printf("PROF done\n")
				mu.Unlock()
			}
			if sc.Text() == "ENC" {
				st := srv.EncodeStats()
				mu.Lock()
				fmt.Printf("ENC %d %d %d\n", st.Shared, st.EncodedOnce, st.Marshalled)
				mu.Unlock()
			}
			if sc.Text() == "MEM" {
				runtime.GC()
				debug.FreeOSMemory()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				mu.Lock()
				fmt.Printf("MEM %d\n", ms.HeapInuse)
				mu.Unlock()
			}
		}
		cancel()
	}()
	fmt.Printf("ADDR %s\n", lis.Addr())
	_ = src.Run(ctx)
	if prof := os.Getenv("WARD_XDS_LOAD_MEMPROFILE"); prof != "" {
		runtime.GC()
		f, err := os.Create(prof)
		if err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
}

// xdsLoadClient is one simulated proxy: a SotW ADS stream subscribing to
// every type (wildcard) and ACKing every response.
type xdsLoadClient struct {
	node  *core.Node
	ns    string
	mu    sync.Mutex
	got   map[string]string    // type → last version ACKed
	at    map[string]time.Time // type → when it was ACKed
	resp  int                  // responses received
	bytes int                  // their encoded size
}

func (c *xdsLoadClient) run(ctx context.Context, cc *grpc.ClientConn, ready chan<- struct{}) error {
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		req := &discovery.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = c.node
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
	signalled := false
	for {
		r, err := st.Recv()
		if err != nil {
			return err
		}
		now := time.Now()
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			return err
		}
		c.mu.Lock()
		c.got[r.GetTypeUrl()], c.at[r.GetTypeUrl()] = r.GetVersionInfo(), now
		c.resp++
		c.bytes += proto.Size(r)
		done := len(c.got) == 4
		c.mu.Unlock()
		if done && !signalled {
			signalled = true
			ready <- struct{}{}
		}
	}
}

func (c *xdsLoadClient) eds() (string, time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[resource.EndpointType], c.at[resource.EndpointType], c.resp
}

// xdsProcStat reads a process's CPU seconds and current/peak RSS in MiB.
func xdsProcStat(pid int) (cpu float64, rss, hwm float64) {
	ut, st := xdsProcCPU(pid)
	cpu = ut + st
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
				kb, _ := strconv.ParseFloat(f[1], 64)
				if f[0] == "VmRSS:" {
					rss = kb / 1024
				} else {
					hwm = kb / 1024
				}
			}
		}
	}
	return cpu, rss, hwm
}

// xdsProcCPU reads a process's user and system CPU seconds.
func xdsProcCPU(pid int) (user, sys float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return ut / 100, st / 100 // USER_HZ
}

func xdsPercentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

// server is the child process.
type xdsServer struct {
	cmd   *exec.Cmd
	addr  string
	snaps chan time.Time
	mem   chan float64
	enc   chan [3]float64
	prof  chan struct{}
	stdin io.WriteCloser
}

// command sends one line to the server's stdin.
func (s *xdsServer) command(b *testing.B, line string) {
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		b.Fatal(err)
	}
}

// encStats asks the server for its response byte counts: shared,
// encoded once, marshalled (see xds.EncodeStats).
func (s *xdsServer) encStats(b *testing.B) [3]float64 {
	s.command(b, "ENC")
	select {
	case v := <-s.enc:
		return v
	case <-time.After(30 * time.Second):
		b.Fatal("no ENC answer")
	}
	return [3]float64{}
}

// heapMiB asks the server for its live heap after a GC.
func (s *xdsServer) heapMiB(b *testing.B) float64 {
	if _, err := io.WriteString(s.stdin, "MEM\n"); err != nil {
		b.Fatal(err)
	}
	select {
	case m := <-s.mem:
		return m
	case <-time.After(30 * time.Second):
		b.Fatal("no MEM answer")
	}
	return 0
}

func startXDSServer(b *testing.B, dir string) *xdsServer {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestXDSLoadServerProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), xdsServerModeEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &xdsServer{cmd: cmd, snaps: make(chan time.Time, 100), mem: make(chan float64, 1), enc: make(chan [3]float64, 1), prof: make(chan struct{}, 1), stdin: stdin}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "ADDR":
				addr <- f[1]
			case len(f) == 2 && f[0] == "PROF":
				s.prof <- struct{}{}
			case len(f) == 4 && f[0] == "ENC":
				var v [3]float64
				for i := range v {
					v[i], _ = strconv.ParseFloat(f[i+1], 64)
				}
				s.enc <- v
			case len(f) == 2 && f[0] == "MEM":
				n, _ := strconv.ParseFloat(f[1], 64)
				s.mem <- n / (1 << 20)
			case len(f) == 3 && f[0] == "SNAPSHOT":
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				s.snaps <- time.Unix(0, ns)
			}
		}
	}()
	select {
	case s.addr = <-addr:
	case <-time.After(30 * time.Second):
		b.Fatal("server process did not start")
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	return s
}

func writeXDSMesh(b *testing.B, dir string, o benchmesh.Options) {
	for i := range o.Services {
		writeXDSService(b, dir, o, i, 0)
	}
	if o.Sidecars {
		var sb strings.Builder
		for n := range o.Namespaces {
			fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: ns%d}\nspec:\n  egress: [{hosts: [\"./*\", \"istio-system/*\"]}]\n---\n", n)
		}
		if err := os.WriteFile(filepath.Join(dir, "sidecars.yaml"), []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

func writeXDSService(b *testing.B, dir string, o benchmesh.Options, i, gen int) {
	var sb strings.Builder
	benchmesh.Service(&sb, o, i, gen)
	// Write-then-rename so the watcher never sees a half-written file.
	tmp := filepath.Join(dir, fmt.Sprintf(".svc%d.tmp", i))
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("svc%d.yaml", i))); err != nil {
		b.Fatal(err)
	}
}

func xdsBenchLoad(b *testing.B, o benchmesh.Options, proxies, changes int) {
	dir := b.TempDir()
	writeXDSMesh(b, dir, o)
	srv := startXDSServer(b, dir)
	pid := srv.cmd.Process.Pid
	select {
	case <-srv.snaps:
	case <-time.After(60 * time.Second):
		b.Fatal("no initial snapshot")
	}
	// Baseline after the initial snapshot is indexed (no proxies yet).
	time.Sleep(500 * time.Millisecond) // let the debounced first push run; measurement setup, not synchronisation
	cpu0, rss0, _ := xdsProcStat(pid)
	_, sys0 := xdsProcCPU(pid)
	heap0 := srv.heapMiB(b)
	enc0 := srv.encStats(b)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*grpc.ClientConn, 20)
	for i := range conns {
		cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		conns[i] = cc
	}
	clients := make([]*xdsLoadClient, proxies)
	ready := make(chan struct{}, proxies)
	profConnect := os.Getenv(xdsConnectProfileEnv) != ""
	if profConnect {
		srv.command(b, "PROF START")
		select {
		case <-srv.prof:
		case <-time.After(30 * time.Second):
			b.Fatal("connect profile not started")
		}
	}
	start := time.Now()
	for k := range proxies {
		i, v := k/2%o.Services, k%2
		ns := o.Namespace(i)
		meta, _ := structpb.NewStruct(map[string]any{
			"NAMESPACE": ns, "INSTANCE_IPS": benchmesh.WorkloadAddress(i, v, 0),
			"LABELS": map[string]any{"app": fmt.Sprint("svc", i), "version": fmt.Sprint("v", v+1)},
		})
		c := &xdsLoadClient{ns: ns, got: map[string]string{}, at: map[string]time.Time{},
			node: &core.Node{Id: fmt.Sprintf("sidecar~%s~svc%d-%d.%s~%s.svc.cluster.local", benchmesh.WorkloadAddress(i, v, 0), i, v, ns, ns), Metadata: meta}}
		clients[k] = c
		go func() { _ = c.run(ctx, conns[k%len(conns)], ready) }()
	}
	for range proxies {
		select {
		case <-ready:
		case <-time.After(5 * time.Minute):
			b.Fatal("initial push did not complete within 5 minutes")
		}
	}
	initial := time.Since(start)
	cpu1, rss1, hwm1 := xdsProcStat(pid)
	_, sys1 := xdsProcCPU(pid)
	enc1 := srv.encStats(b)
	var resp0, bytes0 int
	for _, c := range clients {
		c.mu.Lock()
		resp0, bytes0 = resp0+c.resp, bytes0+c.bytes
		c.mu.Unlock()
	}
	if profConnect {
		srv.command(b, "PROF STOP")
		select {
		case <-srv.prof:
		case <-time.After(30 * time.Second):
			b.Fatal("connect profile not written")
		}
	}

	var perClient, perChange []time.Duration
	unaffected := 0
	for n := range changes {
		svc := (n * 37) % o.Services
		ns := o.Namespace(svc)
		before := map[*xdsLoadClient]string{}
		respBefore := map[*xdsLoadClient]int{}
		for _, c := range clients {
			v, _, r := c.eds()
			before[c], respBefore[c] = v, r
		}
		writeXDSService(b, dir, o, svc, n+1)
		var snapAt time.Time
		select {
		case snapAt = <-srv.snaps:
		case <-time.After(30 * time.Second):
			b.Fatal("change not picked up")
		}
		var last time.Duration
		for _, c := range clients {
			affected := c.ns == ns || !o.Sidecars
			if !affected {
				continue
			}
			deadline := time.Now().Add(3 * time.Minute)
			for {
				v, at, _ := c.eds()
				if v != before[c] {
					d := at.Sub(snapAt)
					perClient = append(perClient, d)
					last = max(last, d)
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("change %d: proxy %s never got new endpoints", n, c.node.GetId())
				}
				time.Sleep(2 * time.Millisecond) // polling a bounded wait
			}
		}
		perChange = append(perChange, last)
		for _, c := range clients {
			if _, _, r := c.eds(); c.ns != ns && o.Sidecars && r != respBefore[c] {
				unaffected++
			}
		}
	}
	cpu2, rss2, hwm2 := xdsProcStat(pid)
	enc2 := srv.encStats(b)
	heap2 := srv.heapMiB(b)
	_, rss3, _ := xdsProcStat(pid)
	b.ReportMetric(initial.Seconds(), "initial-push-s")
	b.ReportMetric(xdsPercentile(perChange, 0.5).Seconds()*1000, "change-all-acked-p50-ms")
	b.ReportMetric(xdsPercentile(perChange, 0.99).Seconds()*1000, "change-all-acked-p99-ms")
	b.ReportMetric(xdsPercentile(perClient, 0.5).Seconds()*1000, "change-proxy-acked-p50-ms")
	b.ReportMetric(xdsPercentile(perClient, 0.99).Seconds()*1000, "change-proxy-acked-p99-ms")
	b.ReportMetric(cpu1-cpu0, "cpu-initial-s")
	b.ReportMetric((cpu1-cpu0)/float64(proxies)*1000, "cpu-per-connect-ms")
	// Bytes of responses: marshalled for one response only, written once
	// into encodings shared between responses, and sent from those.
	b.ReportMetric((enc1[2]-enc0[2])/float64(max(resp0, 1)), "initial-marshalled-B/response")
	b.ReportMetric((enc1[1]-enc0[1])/(1<<20), "initial-encoded-once-MiB")
	b.ReportMetric((enc1[0]-enc0[0])/(1<<20), "initial-shared-MiB-sent")
	b.ReportMetric((enc2[2]-enc1[2]+enc2[1]-enc1[1])/float64(max(changes, 1))/(1<<20), "change-encoded-MiB/push")
	// Page faults on fresh memory (send buffers) count as system time.
	b.ReportMetric(sys1-sys0, "cpu-initial-sys-s")
	b.ReportMetric(float64(resp0), "initial-responses")
	b.ReportMetric(float64(bytes0)/(1<<20), "initial-MiB-sent")
	b.ReportMetric(cpu2-cpu1, "cpu-changes-s")
	b.ReportMetric(max(hwm1, hwm2), "peak-rss-MiB")
	b.ReportMetric((rss3-rss0)/float64(proxies), "rss-after-gc-per-proxy-MiB")
	b.ReportMetric((heap2-heap0)/float64(proxies), "live-heap-per-proxy-MiB")
	b.ReportMetric((max(hwm1, hwm2)-rss0)/float64(proxies), "peak-rss-per-proxy-MiB")
	b.ReportMetric(float64(unaffected), "unaffected-pushes")
	b.Logf("proxies=%d services=%d sidecars=%v: baseline rss %.0f MiB (heap %.0f), after connect %.0f MiB (peak %.0f), after %d changes %.0f MiB, after GC %.0f MiB (heap %.0f)",
		proxies, o.Services, o.Sidecars, rss0, heap0, rss1, hwm1, changes, rss2, rss3, heap2)
}

// BenchmarkXDSLoad connects 2,000 simulated sidecars (SotW ADS over
// loopback) to a Ward xDS server fed by a config directory holding 1,000
// services × 2 ports × 3 subsets, then changes one service's endpoints 20
// times ("scoped": a Sidecar "./*" per namespace of 100 services, so 200
// proxies see each change) or 5 times ("fullmesh": no Sidecar, every proxy
// sees all 8,000 clusters and every change).
// Run with -benchtime=1x.
//
// WARD_XDS_LOAD_PROXIES and WARD_XDS_LOAD_SERVICES shrink the run (e.g.
// 500 and 250 on a shared machine); per-proxy figures scale from there.
func BenchmarkXDSLoad(b *testing.B) {
	proxies, services := envInt("WARD_XDS_LOAD_PROXIES", 2000), envInt("WARD_XDS_LOAD_SERVICES", 1000)
	for _, sc := range []bool{true, false} {
		name, changes := "scoped", 20
		if !sc {
			// Every change re-sends 8,000 endpoint sets to all 2,000 proxies.
			name, changes = "fullmesh", 5
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				xdsBenchLoad(b, benchmesh.Options{Services: services, Namespaces: 10, Sidecars: sc}, proxies, changes)
			}
		})
	}
}

// envInt reads a positive integer from the environment, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
