package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// TestAuthzProxylessTCPPortDeny is issue 12 hole 1 on the proxyless data
// plane: the echo server's port is declared protocol TCP, so Istio's TCP
// semantics apply to it. A DENY rule for principal ns/bad limited to the
// HTTP-only path /admin is broadened to every connection of ns/bad; grpc-go
// (which serves every port with an HCM) must enforce that, denying bad's
// UnaryCall while good's goes through. Under HTTP semantics (the hole) bad
// would be allowed. The Rego engine judges the same TCP connection alike.
func TestAuthzProxylessTCPPortDeny(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	policies := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad-admin, namespace: ns}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/ns/sa/bad"]}}]
    to: [{operation: {paths: ["/admin"]}}]
`
	cfg := strings.Replace(authzConfig(port, policies), "name: grpc, protocol: GRPC", "name: grpc, protocol: TCP", 1)
	if !strings.Contains(cfg, "protocol: TCP") {
		t.Fatal("echo service port not switched to TCP")
	}
	m := newAuthzMesh(t, cfg)
	authzServer(t, m, lis)
	for _, c := range []struct {
		sa    string
		allow bool
	}{{"bad", false}, {"client", true}} {
		checkRegoTCP(t, policies, "ns", c.sa, c.allow)
		client := meshClient(t, m, "ns", c.sa)
		eventually(t, fmt.Sprintf("TCP port: ns/%s allowed=%v", c.sa, c.allow), func() error {
			return verdict(client, "", c.allow)
		})
	}
}

// checkRegoTCP decides a TCP connection from ns/sa to the echo workload
// with the Rego engine.
func checkRegoTCP(t *testing.T, policies, ns, sa string, allow bool) {
	t.Helper()
	cfgs, _, err := schema.DecodeAll([]byte(policies), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := authz.NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "ns", mesh.Labels{"app": "echo", mesh.LabelTLSMode: "istio"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Decide(context.Background(), &authz.Request{
		Source:      authz.Peer{IP: "127.0.0.1", Principal: fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa)},
		Destination: authz.Peer{IP: "127.0.0.1", Port: 7070},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed != allow {
		t.Errorf("Rego decides %s for ns/%s on a TCP connection, want allowed=%v", d.Explain(), sa, allow)
	}
}
