package ambient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
)

// controlPlane is Ward's CA serving its certificate service on loopback,
// placing workloads by the WorkloadEntries of snap (as `ward serve` does
// in file mode).
type controlPlane struct {
	ca   *ca.CA
	addr string
}

func newControlPlane(t testing.TB, snap func() *mesh.Snapshot) *controlPlane {
	t.Helper()
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Placement: ca.SnapshotPlacement{Snapshot: snap},
		Limits: ca.Limits{NodeBurst: 1000, IdentityBurst: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return &controlPlane{ca: c, addr: lis.Addr().String()}
}

// issuer enrols the node proxy of nodeName with a fresh node join token
// and returns it as the proxy's Issuer: the real path of `ward node`.
func (cp *controlPlane) issuer(t testing.TB, nodeName string) *node.RemoteCA {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	tok, err := cp.ca.Tokens().CreateNode(nodeName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nodeID, err := ca.NodeID(td, "ward-system", nodeName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := node.NewRemoteCA(ctx, node.RemoteConfig{Addr: cp.addr, NodeID: nodeID, ServerID: cp.ca.ServerID(), Roots: cp.ca.Roots(), JoinToken: tok.String()})
	if err != nil {
		t.Fatalf("enrol %s: %v", nodeName, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// askFor has iss request id's certificate with a fresh key.
func askFor(t testing.TB, iss node.Issuer, id string) error {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Issue(ctxT(t), spiffeid.RequireFromString(id), csr, 0)
	return err
}

// TestNodeScopedIssuance runs without network namespaces: the node proxy's
// issuer against the real CA service, with placement from the e2e
// config. node-1 holds web (a); db, evil and legacy are on node-2.
func TestNodeScopedIssuance(t *testing.T) {
	w := &world{a: pod{name: "a", addr: "10.254.0.11"}, b: pod{name: "b", addr: "10.254.0.12"},
		e: pod{name: "e", addr: "10.254.0.13"}, d: pod{name: "d", addr: "10.254.0.14"}}
	snap := snapshot(t, w.config())
	cp := newControlPlane(t, func() *mesh.Snapshot { return snap })
	node1 := cp.issuer(t, "node-1")
	if got := node1.NodeCertificate().URIs[0].String(); got != "spiffe://cluster.local/ns/ward-system/sa/ward-node/node/node-1" {
		t.Fatalf("node certificate names %s", got)
	}
	if err := askFor(t, node1, "spiffe://cluster.local/ns/frontend/sa/web"); err != nil {
		t.Errorf("node-1 asking for web, on node-1: %v", err)
	}
	for _, id := range []string{
		"spiffe://cluster.local/ns/shop/sa/db",          // on node-2
		"spiffe://cluster.local/ns/ward-system/sa/ward", // the control plane
		"spiffe://cluster.local/ns/nowhere/sa/ghost",    // on no node
	} {
		if err := askFor(t, node1, id); status.Code(err) != codes.PermissionDenied {
			t.Errorf("node-1 asking for %s: %v, want PermissionDenied", id, err)
		}
	}
}
