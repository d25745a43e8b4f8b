package xds

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/benchmesh"
)

// loadBenchMesh loads the benchmark mesh with service 0 at generation gen
// (its workload ports differ per generation) through the real file source.
func loadBenchMesh(b *testing.B, o benchmesh.Options, gen int) *mesh.Snapshot {
	b.Helper()
	dir := b.TempDir()
	var sb strings.Builder
	benchmesh.Service(&sb, o, 0, gen)
	for i := 1; i < o.Services; i++ {
		benchmesh.Service(&sb, o, i, 0)
	}
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		b.Fatalf("load: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

// BenchmarkPushEndpointChange measures one push after one service's
// WorkloadEntries change in the full mesh (1,000 services, 8,000 clusters
// per proxy, no Sidecar): every one of the 100 connected sidecars is
// affected. Each iteration alternates service 0 between two generations.
func BenchmarkPushEndpointChange(b *testing.B) {
	o := benchmesh.Options{Services: 1000, Namespaces: 10}
	snaps := [2]*mesh.Snapshot{loadBenchMesh(b, o, 0), loadBenchMesh(b, o, 1)}
	s := NewServer(Config{})
	defer s.Close()
	s.UpdateNow(snaps[0])
	for k := range 100 {
		i, v := k/2, k%2
		ns := o.Namespace(i)
		meta, _ := structpb.NewStruct(map[string]any{
			"NAMESPACE": ns, "INSTANCE_IPS": benchmesh.WorkloadAddress(i, v, 0),
			"LABELS": map[string]any{"app": fmt.Sprint("svc", i), "version": fmt.Sprint("v", v+1)},
		})
		s.attach(int64(k+1), &core.Node{Id: fmt.Sprintf("sidecar~%s~svc%d-%d.%s~%s.svc.cluster.local", benchmesh.WorkloadAddress(i, v, 0), i, v, ns, ns), Metadata: meta})
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n++
		s.UpdateNow(snaps[n%2])
	}
	b.StopTimer()
	if g := s.currentOf(fmt.Sprintf("sidecar~%s~svc0-0.ns0~ns0.svc.cluster.local", benchmesh.WorkloadAddress(0, 0, 0))); g == nil || len(g.res.Endpoints) != 8000 {
		b.Fatalf("proxy config after the pushes is missing or has the wrong endpoint sets")
	}
}
