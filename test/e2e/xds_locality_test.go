package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcxds "google.golang.org/grpc/xds"
)

// localityClient dials target through Ward as a node in locality
// region/zone (the bootstrap's node.locality).
func (m *xdsMesh) localityClient(name, region, zone, target string) testgrpc.TestServiceClient {
	m.t.Helper()
	id := fmt.Sprintf("grpc~127.0.0.2~%s.test~test.svc.cluster.local", name)
	boot, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": m.addr, "channel_creds": []any{map[string]any{"type": "insecure"}}, "server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": id, "locality": map[string]any{"region": region, "zone": zone},
			"metadata": map[string]any{"GENERATOR": "grpc", "NAMESPACE": "test", "LABELS": map[string]string{"app": name}}},
	})
	if err != nil {
		m.t.Fatal(err)
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		m.t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// plainBackend serves b without xDS (clients reach it directly) and
// returns a function that stops it.
func plainBackend(t *testing.T, b *backend, lis net.Listener) func() {
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return s.Stop
}

func localityEntry(name string, port int, locality string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: test}
spec: {address: 127.0.0.1, ports: {grpc: %d}, labels: {app: echo}, locality: %s}
---
`, name, port, locality)
}

// grpc-go follows Ward's EDS priorities: with outlierDetection (Istio's
// default locality failover) a client sends everything to the endpoint in
// its own zone and fails over to the other region when that endpoint goes
// away; a client in the other region prefers the other endpoint.
func TestXDSLocalityFailover(t *testing.T) {
	m := newXDSMesh(t)
	near, lisNear := m.listen("near")
	far, lisFar := m.listen("far")
	m.apply(echoService(echoHost, "test", "echo") +
		localityEntry("near", near.port, "us-east/a") + localityEntry("far", far.port, "eu-west/a") +
		`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo.test.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s}
---
`)
	stopNear := plainBackend(t, near, lisNear)
	plainBackend(t, far, lisFar)

	east := m.localityClient("east", "us-east", "a", echoHost+":7070")
	west := m.localityClient("west", "eu-west", "a", echoHost+":7070")
	for i := range 20 {
		if name, err := call(context.Background(), east); err != nil || name != "near" {
			t.Fatalf("us-east client call %d: got %q, %v; want near (priority 0)", i, name, err)
		}
		if name, err := call(context.Background(), west); err != nil || name != "far" {
			t.Fatalf("eu-west client call %d: got %q, %v; want far (priority 0)", i, name, err)
		}
	}
	stopNear()
	eventually(t, "us-east client fails over to eu-west", func() error {
		name, err := call(context.Background(), east)
		if err != nil {
			return err
		}
		if name != "far" {
			return fmt.Errorf("got %q: %w", name, errNotYet)
		}
		return nil
	})
}
