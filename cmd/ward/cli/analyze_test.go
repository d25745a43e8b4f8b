package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/audit/analyze"
	"github.com/wardmesh/ward/xds"
)

// TestAnalyzeConnectedProxies: with --server, the per-proxy codes are
// computed for the proxies connected to a real xDS server (here a
// proxyless gRPC one the config does not declare).
func TestAnalyzeConnectedProxies(t *testing.T) {
	dir := t.TempDir()
	cfg := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rev, namespace: app}
spec:
  hosts: ["rev.app.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: rev}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: rev-1, namespace: app}
spec: {address: 127.0.0.4, serviceAccount: rev, labels: {app: rev, security.istio.io/tlsMode: istio}}
`
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Offline nothing says rev-1 is proxyless.
	if out, err := execRoot(t, "analyze", "--config", dir, "-o", "json"); err != nil || out != "[]\n" {
		t.Fatalf("offline: %v %s", err, out)
	}
	f := startXDS(t)
	id := "grpc~127.0.0.4~rev-1.app~app.svc.cluster.local"
	c := f.connect(t, id)
	md, err := structpb.NewStruct(map[string]any{xds.MetaLabels: map[string]any{"app": "rev"}, xds.MetaInstanceIPs: "127.0.0.4"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: id, Metadata: md}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	c.recv()
	out, err := execRoot(t, "analyze", "--config", dir, "--server", f.debug, "-o", "json")
	if err != nil {
		t.Fatalf("analyze --server: %v %s", err, out)
	}
	var ds []analyze.Diagnostic
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Code != analyze.GRPCPermissive || ds[0].Object != "WorkloadEntry app/rev-1" {
		t.Errorf("analyze --server = %+v, want one %s on WorkloadEntry app/rev-1", ds, analyze.GRPCPermissive.ID)
	}
}

// TestAnalyzeTextContinuesMultiLineMessages: an object with several errors
// keeps one violation per line, continued in the MESSAGE column.
func TestAnalyzeTextContinuesMultiLineMessages(t *testing.T) {
	ds := []analyze.Diagnostic{{Code: analyze.ConfigRejected, Severity: analyze.Error, Object: "config",
		Message: "a.yaml:3: AuthorizationPolicy app/p: 2 errors:\n  a.yaml:9: spec.x: bad\n  a.yaml:12: spec.y: worse"}}
	var b strings.Builder
	if err := writeDiagnostics(&b, ds, outTable); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header + 3 lines, got:\n%s", b.String())
	}
	col := strings.Index(lines[1], "a.yaml:3:")
	for _, l := range lines[2:] {
		if strings.Index(l, "  a.yaml:") != col {
			t.Errorf("continuation %q not in the MESSAGE column (%d):\n%s", l, col, b.String())
		}
	}
}
