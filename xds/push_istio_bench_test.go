package xds

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/benchmesh"
)

// pushProxies is how many proxies BenchmarkPushIstioTemplate pushes to.
const pushProxies = 100

// BenchmarkPushIstioTemplate is a full push of one of Istio's own
// benchmark templates (read from ISTIO_BENCH_DIR at run time, skipped
// without it; docs/benchmarks.md has the commands) to 100 connected
// proxies, as the server does on a config change: index the snapshot,
// then for every proxy compute its scope and fingerprint and take, or
// generate, validate and marshal once, each of its config sides. The
// proxies are 100 pods of Istio's benchmark workload in default (same
// labels, their own addresses and ids; pod 0 is Istio's benchmark proxy
// at 1.1.1.1); <template>/pods also makes them the endpoints of one more
// service, so each pod has an inbound side. Each iteration starts from a fresh server with the proxies
// attached and nothing generated (outside the timer), so nothing is
// reused from an earlier push. Generation runs on one goroutine
// (PushConcurrency 1) so that ns/op is comparable with Istio's
// single-goroutine loop; sending is not included, on either side.
func BenchmarkPushIstioTemplate(b *testing.B) {
	dir := os.Getenv("ISTIO_BENCH_DIR")
	if dir == "" {
		b.Skip("set ISTIO_BENCH_DIR to istio.io/istio's pilot/pkg/xds/testdata/benchmarks")
	}
	for _, c := range benchmesh.IstioCases {
		for _, pods := range []bool{false, true} {
			name := c.Name
			if pods {
				name += "/pods"
			}
			b.Run(name, func(b *testing.B) { benchPush(b, dir, c, pods) })
		}
	}
}

// benchPush pushes template c to the 100 pods; with pods, the pods are
// also the endpoints of one more service (benchmesh.IstioPods), so each
// has its own inbound side.
func benchPush(b *testing.B, dir string, c benchmesh.IstioCase, pods bool) {
	snap := loadIstioTemplate(b, dir, c, pods)
	nodes := make([]*core.Node, pushProxies)
	for i := range nodes {
		nodes[i] = istioPod(c, i, pods)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var s *Server
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		s = NewServer(Config{PushConcurrency: 1})
		for i, n := range nodes {
			s.attach(int64(i+1), n)
		}
		b.StartTimer()
		start := cpuNow()
		s.UpdateNow(snap)
		cpu += cpuNow() - start
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	reportPush(b, s, nodes)
	s.Close()
}

func loadIstioTemplate(b *testing.B, dir string, c benchmesh.IstioCase, pods bool) *mesh.Snapshot {
	text, err := os.ReadFile(filepath.Join(dir, c.Name+".yaml"))
	if err != nil {
		b.Fatal(err)
	}
	y, err := benchmesh.RenderIstio(string(text), c)
	if err != nil {
		b.Fatal(err)
	}
	if pods {
		y += "\n---\n" + benchmesh.IstioPods(pushProxies)
	}
	tmp := b.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "mesh.yaml"), []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := file.Load(tmp)
	if err != nil || len(res.Rejected) > 0 {
		b.Fatalf("load: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

// cpuNow is the process's user+system CPU time (all threads, so the
// garbage collector's workers count too): on the shared machine CPU per
// op varies far less than ns/op, which includes waiting for a core.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// istioPod is pod i of Istio's benchmark workload as its node would
// connect: a router for the gateways template, else a sidecar.
func istioPod(c benchmesh.IstioCase, i int, pods bool) *core.Node {
	typ, ip := "sidecar", benchmesh.IstioPodIP(i)
	if c.Router() {
		typ = "router"
	}
	labels := map[string]any{"istio.io/benchmark": "true"}
	if pods {
		labels["app"] = "bench-pods"
	}
	meta, _ := structpb.NewStruct(map[string]any{
		"NAMESPACE": "default", "INSTANCE_IPS": ip, "LABELS": labels,
	})
	return &core.Node{Id: fmt.Sprintf("%s~%s~pod-%d.default~default.svc.cluster.local", typ, ip, i), Metadata: meta}
}

// reportPush checks every proxy got a config and reports its sizes and
// how many distinct configs the 100 proxies share.
func reportPush(b *testing.B, s *Server, nodes []*core.Node) {
	distinct := map[*generated]bool{}
	var g *generated
	for _, n := range nodes {
		if g = s.currentOf(n.GetId()); g == nil || len(g.res.Listeners) == 0 {
			b.Fatalf("proxy %s has no config after the push", n.GetId())
		}
		distinct[g] = true
	}
	b.ReportMetric(float64(len(g.res.Listeners)), "listeners")
	b.ReportMetric(float64(len(g.res.Clusters)), "clusters")
	b.ReportMetric(float64(len(g.res.Routes)), "routes")
	b.ReportMetric(float64(len(g.res.Endpoints)), "endpoints")
	b.ReportMetric(float64(len(distinct)), "distinct-configs")
}
