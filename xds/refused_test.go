package xds

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// inlineAt is a ServiceEntry in default whose inline endpoint at 1.1.1.1
// runs as service account web; extra is appended to change the snapshot.
func inlineAt(t *testing.T, extra string) *mesh.Snapshot {
	t.Helper()
	y := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 1.1.1.1, serviceAccount: web}]
` + extra
	cfgs, _, err := schema.DecodeAll([]byte(y), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
}

func nodeAt(id, sa string) *core.Node {
	meta, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "SERVICE_ACCOUNT": sa, "INSTANCE_IPS": "1.1.1.1"})
	return &core.Node{Id: "sidecar~1.1.1.1~" + id + ".default~default.svc.cluster.local", Metadata: meta}
}

// logSink is a log buffer safe for concurrent handlers.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func hasCluster(g *generated, name string) bool {
	for _, c := range g.res.Clusters {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

// TestRefusedServiceClaimLoggedOnce: a proxy at an inline endpoint's
// address under another service account is not given the service, and
// the server says so once per connection however often it regenerates;
// the endpoint's own identity is given it.
func TestRefusedServiceClaimLoggedOnce(t *testing.T) {
	var logs logSink
	s := NewServer(Config{PushConcurrency: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	defer s.Close()
	s.UpdateNow(inlineAt(t, ""))
	s.attach(1, nodeAt("mallory", "mallory"))
	s.attach(2, nodeAt("web", "web"))
	s.UpdateNow(inlineAt(t, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: other, namespace: default}\nspec: {hosts: [other.example.com], ports: [{number: 81, name: http, protocol: HTTP}], resolution: DNS}\n"))

	if g := s.currentOf(nodeAt("mallory", "").GetId()); g == nil || hasCluster(g, "inbound|80||") {
		t.Errorf("mallory: want a config without inbound|80||")
	}
	if g := s.currentOf(nodeAt("web", "").GetId()); g == nil || !hasCluster(g, "inbound|80||") {
		t.Errorf("web: want inbound|80||")
	}
	const msg = "proxy not given a service whose endpoint is at its IP"
	if n := strings.Count(logs.String(), msg); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	line := logs.String()
	for _, want := range []string{"endpoint_identity=spiffe://cluster.local/ns/default/sa/web", "proxy_identity=spiffe://cluster.local/ns/default/sa/mallory", "address=1.1.1.1"} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %q:\n%s", want, line)
		}
	}
}
