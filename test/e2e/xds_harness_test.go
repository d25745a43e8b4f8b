package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/translate"
)

// xdsMesh is one Ward control plane on loopback fed from a config
// directory, plus the grpc-go xDS servers and clients of a test.
type xdsMesh struct {
	t    *testing.T
	srv  *xds.Server
	addr string
	dir  string
}

func newXDSMesh(t *testing.T) *xdsMesh {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := xds.NewServer(xds.Config{Log: log})
	g := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); srv.Close() })
	return &xdsMesh{t: t, srv: srv, addr: lis.Addr().String(), dir: t.TempDir()}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// apply writes the config directory (one file) and pushes it at once.
func (m *xdsMesh) apply(yaml string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, "mesh.yaml"), []byte(yaml), 0o600); err != nil {
		m.t.Fatal(err)
	}
	res, err := file.Load(m.dir)
	if err != nil {
		m.t.Fatal(err)
	}
	if len(res.Rejected) > 0 || len(res.BrokenFiles) > 0 {
		m.t.Fatalf("config rejected: %v %v", res.Errs(), res.BrokenFiles)
	}
	m.srv.UpdateNow(res.Snapshot)
}

// bootstrap is a grpc xDS bootstrap for one node.
func (m *xdsMesh) bootstrap(id string, meta map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": m.addr, "channel_creds": []any{map[string]any{"type": "insecure"}}, "server_features": []string{"xds_v3"},
		}},
		"node":                                   map[string]any{"id": id, "metadata": meta},
		"server_listener_resource_name_template": translate.GRPCServerListenerPrefix + "%s",
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// backend is a grpc xDS server answering UnaryCall with its name.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	name  string
	port  int
	calls atomic.Int64
	// behave decides the answer of call n (1-based); nil = success.
	behave func(ctx context.Context, n int64) error
}

func (b *backend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	n := b.calls.Add(1)
	if b.behave != nil {
		if err := b.behave(ctx, n); err != nil {
			return nil, err
		}
	}
	return &testgrpc.SimpleResponse{Hostname: b.name}, nil
}

// listen reserves the backend's port before its WorkloadEntry is written.
func (m *xdsMesh) listen(name string) (*backend, net.Listener) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.t.Fatal(err)
	}
	return &backend{name: name, port: lis.Addr().(*net.TCPAddr).Port}, lis
}

// serve starts the backend as an xDS server with the given labels and
// waits until Ward's server listener puts it in serving mode.
func (m *xdsMesh) serve(b *backend, lis net.Listener, ns string, labels map[string]string) {
	m.t.Helper()
	id := fmt.Sprintf("grpc~127.0.0.1~%s.%s~%s.svc.cluster.local", b.name, ns, ns)
	boot := m.bootstrap(id, map[string]any{"GENERATOR": "grpc", "NAMESPACE": ns, "INSTANCE_IPS": "127.0.0.1", "LABELS": labels})
	serveXDS(m.t, "backend "+b.name, lis, boot, b, grpc.Creds(insecure.NewCredentials()))
}

// serveXDS starts a proxyless grpc-go xDS server on lis with the bootstrap
// boot, serving svc as the TestService, and waits (20s at most) until
// Ward's server listener puts it in serving mode. name says which server
// in the failure message; opts are its credentials, interceptors and so on.
func serveXDS(t *testing.T, name string, lis net.Listener, boot []byte, svc testgrpc.TestServiceServer, opts ...grpc.ServerOption) {
	t.Helper()
	serving := make(chan struct{})
	var once sync.Once
	s, err := grpcxds.NewGRPCServer(append(opts, grpcxds.BootstrapContentsForTesting(boot),
		grpcxds.ServingModeCallback(func(_ net.Addr, a grpcxds.ServingModeChangeArgs) {
			if a.Mode == connectivity.ServingModeServing {
				once.Do(func() { close(serving) })
			}
		}))...)
	if err != nil {
		t.Fatal(err)
	}
	testgrpc.RegisterTestServiceServer(s, svc)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	select {
	case <-serving:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never got its server listener from Ward", name)
	}
}

// wardServerCreds are the transport credentials of a proxyless server
// whose security comes from Ward over xDS (plaintext when Ward sends none).
func wardServerCreds(t *testing.T) grpc.ServerOption {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	return grpc.Creds(creds)
}

// client dials target through Ward as node id.
func (m *xdsMesh) client(name, ns, target string) (testgrpc.TestServiceClient, string) {
	m.t.Helper()
	id := fmt.Sprintf("grpc~127.0.0.2~%s.%s~%s.svc.cluster.local", name, ns, ns)
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(m.bootstrap(id, map[string]any{"GENERATOR": "grpc", "NAMESPACE": ns, "LABELS": map[string]string{"app": name}}))
	if err != nil {
		m.t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc), id
}

// call makes one RPC (waiting for readiness) and returns the backend name.
func call(ctx context.Context, c testgrpc.TestServiceClient, opts ...grpc.CallOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, append(opts, grpc.WaitForReady(true))...)
	return r.GetHostname(), err
}

// eventually retries f until it returns nil or 20 s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a bounded wait, not synchronisation
	}
	t.Fatalf("%s: still failing after 20s: %v", what, err)
}

func codeOf(err error) codes.Code { return status.Code(err) }

var errNotYet = errors.New("not yet")

// echoConfig is a ServiceEntry for echo.test:7070 selecting app=echo
// workloads, plus one WorkloadEntry per backend.
func echoService(host, ns, app string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[3]s, namespace: %[2]s}
spec:
  hosts: [%[1]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: %[3]s}}
---
`, host, ns, app)
}

func workloadEntry(name, ns string, port int, labels map[string]string) string {
	var l []string
	for k, v := range labels {
		l = append(l, fmt.Sprintf("%s: %s", k, v))
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: %s}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {%s}
---
`, name, ns, port, strings.Join(l, ", "))
}
