package bench

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/benchmesh"
	"github.com/wardmesh/ward/xds/translate"
)

// Istio's own benchmark templates (pilot/pkg/xds/testdata/benchmarks in
// the istio.io/istio module), read at run time from the module cache,
// never copied: set ISTIO_BENCH_DIR to that folder (docs/benchmarks.md
// has the commands). Without it these benchmarks skip.
var istioDir = os.Getenv("ISTIO_BENCH_DIR")

func needIstio(b *testing.B) {
	if istioDir == "" {
		b.Skip("set ISTIO_BENCH_DIR to istio.io/istio's pilot/pkg/xds/testdata/benchmarks")
	}
}

func renderIstio(b *testing.B, c benchmesh.IstioCase) string {
	text, err := os.ReadFile(filepath.Join(istioDir, c.Name+".yaml"))
	if err != nil {
		b.Fatal(err)
	}
	y, err := benchmesh.RenderIstio(string(text), c)
	if err != nil {
		b.Fatal(err)
	}
	return y
}

func loadYAML(b *testing.B, y string) *mesh.Snapshot {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		b.Fatalf("load: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

func istioProxy(c benchmesh.IstioCase) mesh.Proxy {
	l := mesh.Labels{"istio.io/benchmark": "true"}
	if c.Router() {
		return mesh.Proxy{ID: "router~1.1.1.1~v0.default~default.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "default", IPs: []string{"1.1.1.1"}, Labels: l}
	}
	return mesh.Proxy{ID: "sidecar~1.1.1.1~v0.default~default.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "default", IPs: []string{"1.1.1.1"}, Labels: l}
}

// cpuNow is the process's user+system CPU time (all threads, so the
// garbage collector's workers count too). On the shared machine CPU per
// op varies far less than ns/op, which includes waiting for a core.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func genOne(b *testing.B, snap *mesh.Snapshot, p mesh.Proxy) {
	ix := translate.NewIndex(snap)
	var res *translate.Resources
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuNow()
	for b.Loop() {
		res = translate.Generate(ix, ix.Scope(&p), translate.Hooks{})
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op")
	if err := res.Validate(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(res.Listeners)), "listeners")
	b.ReportMetric(float64(len(res.Clusters)), "clusters")
	b.ReportMetric(float64(len(res.Routes)), "routes")
}

// BenchmarkIstioTemplate: Ward generating one proxy's full config from
// Istio's own benchmark templates rendered at Istio's sizes.
func BenchmarkIstioTemplate(b *testing.B) {
	needIstio(b)
	for _, c := range benchmesh.IstioCases {
		b.Run(c.Name, func(b *testing.B) { genOne(b, loadYAML(b, renderIstio(b, c)), istioProxy(c)) })
	}
}

func BenchmarkIstioTemplateIndex(b *testing.B) {
	needIstio(b)
	for _, c := range benchmesh.IstioCases {
		b.Run(c.Name, func(b *testing.B) {
			snap := loadYAML(b, renderIstio(b, c))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				translate.NewIndex(snap)
			}
		})
	}
}

// BenchmarkWardShape: Ward's own benchmesh.Shape at Istio's unit counts.
func BenchmarkWardShape(b *testing.B) {
	for _, c := range benchmesh.IstioCases {
		b.Run(c.Name, func(b *testing.B) {
			y, err := benchmesh.Shape(c.Name, c.Services)
			if err != nil {
				b.Fatal(err)
			}
			p := mesh.Proxy{ID: "sidecar~10.200.0.1~app-0.default~default.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "default",
				IPs: []string{"10.200.0.1"}, Labels: mesh.Labels{"app": "app"}}
			if benchmesh.ShapeProxy(c.Name) == "router" {
				p = mesh.Proxy{ID: "router~10.9.9.9~ingress.istio-system~istio-system.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "istio-system",
					Labels: mesh.Labels{"istio": "ingressgateway"}}
			}
			genOne(b, loadYAML(b, y), p)
		})
	}
}
