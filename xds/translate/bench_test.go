package translate_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/benchmesh"
	"github.com/wardmesh/ward/xds/translate"
)

// benchSnapshot loads the Istio-style benchmark mesh through the real
// file source: 1,000 services × 2 ports × 3 subsets with DestinationRules
// and VirtualServices, and a gateway with 1,000 hosts.
func benchSnapshot(b *testing.B, sidecars bool) *mesh.Snapshot {
	b.Helper()
	dir := b.TempDir()
	y := benchmesh.YAML(benchmesh.Options{Services: 1000, Namespaces: 10, Sidecars: sidecars, GatewayHosts: 1000})
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		b.Fatalf("load: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

var (
	benchSidecar = mesh.Proxy{ID: "sidecar~10.0.0.24~svc0-v1-0.ns0~ns0.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "ns0",
		IPs: []string{benchmesh.WorkloadAddress(0, 0, 0)}, Labels: mesh.Labels{"app": "svc0", "version": "v1"}}
	benchGRPC = mesh.Proxy{ID: "grpc~10.0.0.24~svc0-v1-0.ns0~ns0.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "ns0",
		IPs: []string{benchmesh.WorkloadAddress(0, 0, 0)}, Labels: mesh.Labels{"app": "svc0", "version": "v1"}}
	benchRouter = mesh.Proxy{ID: "router~10.9.9.9~ingress.istio-system~istio-system.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "istio-system",
		Labels: mesh.Labels{"istio": "ingressgateway"}}
)

func benchGenerate(b *testing.B, sidecars bool, p mesh.Proxy) {
	res := generateLoop(b, benchSnapshot(b, sidecars), p)
	b.ReportMetric(float64(len(res.Clusters)), "clusters")
	b.ReportMetric(float64(len(res.Listeners)), "listeners")
}

// generateLoop times Generate for p over snap (indexed outside the timer)
// and returns the last, validated, result.
func generateLoop(b *testing.B, snap *mesh.Snapshot, p mesh.Proxy) *translate.Resources {
	ix := translate.NewIndex(snap)
	var res *translate.Resources
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res = translate.Generate(ix, ix.Scope(&p), translate.Hooks{})
	}
	b.StopTimer()
	if err := res.Validate(); err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkGenerateSidecarFullMesh: a sidecar that sees all 1,000 services
// (no Sidecar scoping): 8,000 clusters.
func BenchmarkGenerateSidecarFullMesh(b *testing.B) { benchGenerate(b, false, benchSidecar) }

// BenchmarkGenerateSidecarScoped: the same sidecar under a namespace
// Sidecar "./*": 100 services.
func BenchmarkGenerateSidecarScoped(b *testing.B) { benchGenerate(b, true, benchSidecar) }

// BenchmarkGenerateGRPC: a proxyless client seeing the full mesh.
func BenchmarkGenerateGRPC(b *testing.B) { benchGenerate(b, false, benchGRPC) }

// BenchmarkGenerateGateway: the ingress gateway with 1,000 hosts.
func BenchmarkGenerateGateway(b *testing.B) { benchGenerate(b, false, benchRouter) }

// BenchmarkNewIndex: per-snapshot indexing and fingerprints.
func BenchmarkNewIndex(b *testing.B) {
	snap := benchSnapshot(b, false)
	b.ReportAllocs()
	for b.Loop() {
		translate.NewIndex(snap)
	}
}

// BenchmarkValidateSidecarFullMesh: ValidateAll + Any walk + references
// over a full-mesh sidecar config.
func BenchmarkValidateSidecarFullMesh(b *testing.B) {
	snap := benchSnapshot(b, false)
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(&benchSidecar), translate.Hooks{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := res.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIstioShape generates one proxy's config for each of the
// Istio-benchmark-like shapes benchmesh.Shape renders, at 1,000 units
// (gateways: one Gateway with 1,000 HTTPS servers and 1,000
// VirtualServices). The snapshot is loaded and indexed outside the timer;
// BenchmarkIstioShapeIndex times NewIndex for the same inputs.
func BenchmarkIstioShape(b *testing.B) {
	for _, shape := range benchmesh.Shapes {
		b.Run(shape, func(b *testing.B) {
			res := generateLoop(b, shapeSnapshot(b, shape, 1000), shapeProxy(shape))
			b.ReportMetric(float64(len(res.Clusters)), "clusters")
			b.ReportMetric(float64(len(res.Routes)), "routes")
		})
	}
}

// BenchmarkIstioShapeIndex: the per-snapshot indexing of each shape.
func BenchmarkIstioShapeIndex(b *testing.B) {
	for _, shape := range benchmesh.Shapes {
		b.Run(shape, func(b *testing.B) {
			snap := shapeSnapshot(b, shape, 1000)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				translate.NewIndex(snap)
			}
		})
	}
}

func shapeSnapshot(b *testing.B, shape string, n int) *mesh.Snapshot {
	b.Helper()
	y, err := benchmesh.Shape(shape, n)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		b.Fatalf("load %s: %v %v", shape, err, res.Errs())
	}
	return res.Snapshot
}

func shapeProxy(shape string) mesh.Proxy {
	if benchmesh.ShapeProxy(shape) == "router" {
		return benchRouter
	}
	return mesh.Proxy{ID: "sidecar~10.200.0.1~app-0.default~default.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "default",
		IPs: []string{"10.200.0.1"}, Labels: mesh.Labels{"app": "app"}}
}
