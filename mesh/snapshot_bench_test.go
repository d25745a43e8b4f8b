package mesh

import (
	"fmt"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// benchConfigs builds n ServiceEntries with 2 ports, each selecting 3
// WorkloadEntries (one per version), as in Istio's benchmark meshes.
func benchConfigs(n int) []*Config {
	out := make([]*Config, 0, 4*n)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i%50)
		app := fmt.Sprintf("svc%d", i)
		out = append(out, se(ns, app, testTime, &networking.ServiceEntry{
			Hosts: []string{app + "." + ns + ".svc.cluster.local"}, Resolution: networking.ServiceEntry_STATIC,
			Ports:            []*networking.ServicePort{{Number: 80, Name: "http"}, {Number: 9090, Name: "grpc"}},
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": app}},
		}))
		for v := 1; v <= 3; v++ {
			out = append(out, we(ns, fmt.Sprintf("%s-v%d", app, v), &networking.WorkloadEntry{
				Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, v), Labels: map[string]string{"app": app, "version": fmt.Sprintf("v%d", v)},
			}))
		}
	}
	return out
}

// BenchmarkNewSnapshot measures indexing and hashing a 1,000-service mesh
// (4,000 objects).
func BenchmarkNewSnapshot(b *testing.B) {
	cfgs := benchConfigs(1000)
	b.ReportAllocs()
	for b.Loop() {
		NewSnapshot(MeshConfig{}, cfgs)
	}
}
