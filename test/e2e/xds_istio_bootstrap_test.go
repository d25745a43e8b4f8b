package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/mesh"
)

// istioBootstrap is a grpc xDS bootstrap shaped like the one Istio's agent
// writes (pkg/istio-agent/grpcxds): a "sidecar~" node id with
// GENERATOR=grpc metadata, one file_watcher certificate provider named
// "default" holding certificate, key and roots, and Istio's server
// listener template. Nothing in it comes from Ward's agent.
func (m *authnMesh) istioBootstrap(ns, sa, name, ip string, labels map[string]string) []byte {
	m.t.Helper()
	_, dir := m.issue(ns, sa)
	b, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": m.addr, "channel_creds": []any{map[string]any{"type": "insecure"}}, "server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id": fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, name, ns, ns),
			"metadata": map[string]any{
				"GENERATOR": "grpc", "NAMESPACE": ns, "SERVICE_ACCOUNT": sa, "INSTANCE_IPS": ip,
				"LABELS": labels, "CLUSTER_ID": "Kubernetes", "ISTIO_VERSION": "1.24.0",
			},
		},
		"certificate_providers": map[string]any{
			"default": map[string]any{"plugin_name": "file_watcher", "config": map[string]any{
				"certificate_file":    filepath.Join(dir, "cert-chain.pem"),
				"private_key_file":    filepath.Join(dir, "key.pem"),
				"ca_certificate_file": filepath.Join(dir, "root-cert.pem"),
				"refresh_interval":    "900s",
			}},
		},
		"server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// namedPeerBackend answers with its name and the caller's SPIFFE ID.
type namedPeerBackend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (b *namedPeerBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	id := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 && len(ti.State.PeerCertificates[0].URIs) > 0 {
			id = ti.State.PeerCertificates[0].URIs[0].String()
		}
	}
	return &testgrpc.SimpleResponse{Hostname: b.name, Username: id}, nil
}

// echoLabels are the labels of echo's version v, in the mesh (auto mTLS).
func echoLabels(v string) map[string]string {
	return map[string]string{"app": "echo", "version": v, mesh.LabelTLSMode: "istio"}
}

func istioCompatConfig(p1, p2 int) string {
	v1 := echoLabels("v1")
	v2 := echoLabels("v2")
	return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: ns}
spec:
  hosts: [echo.ns.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: echo}}
---
` + workloadEntry("echo-v1", "ns", p1, v1) + workloadEntry("echo-v2", "ns", p2, v2) + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: ns}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: ns}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: echo, subset: v2}}]
  - route: [{destination: {host: echo, subset: v1}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ns}
spec:
  mtls: {mode: STRICT}
`
}

// istioCompatMesh is a control plane with security hooks and two
// unmodified grpc-go xDS servers of echo.ns.svc.cluster.local:7070 that
// listen on every address, as real servers do, so the server listener
// they ask Ward for is "0.0.0.0:P" or "[::]:P", not 127.0.0.1:P: v1 is
// bootstrapped exactly as Istio's agent does it (certificate provider
// "default" only, Istio's listener template, a sidecar~ node id with
// GENERATOR=grpc), v2 by Ward's agent (grpc-go's default template). The
// namespace is STRICT; a header routes to v2.
type istioCompatMesh struct {
	*authnMesh
	ports [2]int
}

func newIstioCompatMesh(t *testing.T) *istioCompatMesh {
	t.Helper()
	// "tcp4": Go names a "tcp" wildcard listener [::] on a dual-stack host.
	lis1, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	lis2, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("servers listen on %s and %s and ask for their listeners by those names", lis1.Addr(), lis2.Addr())
	p1, p2 := lis1.Addr().(*net.TCPAddr).Port, lis2.Addr().(*net.TCPAddr).Port
	m := newAuthnMesh(t, istioCompatConfig(p1, p2))
	serveXDS(t, "v1 (Istio bootstrap, "+lis1.Addr().String()+")", lis1, m.istioBootstrap("ns", "default", "echo-v1", "127.0.0.1", echoLabels("v1")), &namedPeerBackend{name: "v1"}, wardServerCreds(t))
	serveXDS(t, "v2 (Ward bootstrap, "+lis2.Addr().String()+")", lis2, m.identity("ns", "default", "echo-v2", "127.0.0.1", echoLabels("v2")), &namedPeerBackend{name: "v2"}, wardServerCreds(t))
	return &istioCompatMesh{authnMesh: m, ports: [2]int{p1, p2}}
}

// TestXDSIstioBootstrapWildcardServerShortNames: with the servers of
// newIstioCompatMesh, a grpc-go client bootstrapped the Istio way, in the
// service's namespace, calls the short names xds:///echo:7070,
// xds:///echo.ns:7070 and xds:///echo.ns.svc:7070: routing by header picks
// the subset, every call is mTLS under STRICT with the client's SPIFFE
// ID, and plaintext is refused. Traffic goes to 127.0.0.1 only.
func TestXDSIstioBootstrapWildcardServerShortNames(t *testing.T) {
	m := newIstioCompatMesh(t)
	p1, p2 := m.ports[0], m.ports[1]
	cliBoot := m.istioBootstrap("ns", "client", "client-1", "127.0.0.2", map[string]string{"app": "client"})
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(cliBoot)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	const client = "spiffe://cluster.local/ns/ns/sa/client"
	for _, target := range []string{"echo:7070", "echo.ns:7070", "echo.ns.svc:7070"} {
		t.Run(target, func(t *testing.T) {
			cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(resolver), grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			c := testgrpc.NewTestServiceClient(cc)
			for _, tc := range []struct{ header, want string }{{"", "v1"}, {"v2", "v2"}, {"v3", "v1"}} {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if tc.header != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "x-version", tc.header)
				}
				r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
				cancel()
				if err != nil {
					t.Fatalf("x-version %q: %v", tc.header, err)
				}
				if r.GetHostname() != tc.want || r.GetUsername() != client {
					t.Errorf("x-version %q: answered by %s seeing peer %q, want %s seeing %s over mTLS", tc.header, r.GetHostname(), r.GetUsername(), tc.want, client)
				}
			}
		})
	}

	// STRICT holds on both servers: plaintext straight to them is refused.
	for _, port := range []int{p1, p2} {
		cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		cc.Close()
		if err == nil {
			t.Errorf("plaintext call to 127.0.0.1:%d under STRICT succeeded", port)
		}
	}
}
