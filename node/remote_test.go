package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
)

const placementYAML = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: frontend}
spec:
  address: 10.0.0.1
  serviceAccount: web
  labels: {istio.io/dataplane-mode: ambient, ward.io/node: node-1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec:
  address: 10.0.0.2
  serviceAccount: db
  labels: {istio.io/dataplane-mode: ambient, ward.io/node: node-2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: legacy}
spec:
  address: 10.0.0.3
  serviceAccount: vm
  labels: {ward.io/node: node-1}
`

// serveCA runs a CA on loopback placing workloads by placementYAML.
func serveCA(t *testing.T) (*ca.CA, string) {
	t.Helper()
	snap := snapshotOf(t, "", placementYAML)
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Placement: ca.SnapshotPlacement{Snapshot: func() *mesh.Snapshot { return snap }}})
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
	return c, lis.Addr().String()
}

func remoteConfig(t *testing.T, c *ca.CA, addr, node, token, dir string) RemoteConfig {
	t.Helper()
	id, err := ca.NodeID(c.TrustDomain(), "ward-system", node)
	if err != nil {
		t.Fatal(err)
	}
	return RemoteConfig{Addr: addr, NodeID: id, ServerID: c.ServerID(), Roots: c.Roots(), JoinToken: token, StateDir: dir}
}

func nodeToken(t *testing.T, c *ca.CA, node string) string {
	t.Helper()
	tok, err := c.Tokens().CreateNode(node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

func issueFor(t *testing.T, r *RemoteCA, id string) (*svid, error) {
	t.Helper()
	return issue(context.Background(), r, spiffeid.RequireFromString(id), time.Hour, time.Now())
}

// TestRemoteCA: the node enrols with its token, obtains the certificates
// of its own ambient workloads only, renews its node certificate by mTLS,
// and after a restart renews from its state dir without a token.
func TestRemoteCA(t *testing.T) {
	c, addr := serveCA(t)
	dir := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	r, err := NewRemoteCA(ctx, remoteConfig(t, c, addr, "node-1", nodeToken(t, c, "node-1"), dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if s, err := issueFor(t, r, "spiffe://cluster.local/ns/frontend/sa/web"); err != nil || s.cert.Leaf.URIs[0].String() != "spiffe://cluster.local/ns/frontend/sa/web" {
		t.Fatalf("web on node-1: %v", err)
	}
	for _, id := range []string{
		"spiffe://cluster.local/ns/shop/sa/db",   // on node-2
		"spiffe://cluster.local/ns/legacy/sa/vm", // on node-1 but not ambient
	} {
		if _, err := issueFor(t, r, id); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", id, err)
		}
	}

	first := r.NodeCertificate()
	if err := r.renew(ctx, ""); err != nil {
		t.Fatalf("node renewal by mTLS: %v", err)
	}
	if r.NodeCertificate().SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal kept the old node certificate")
	}
	if _, err := issueFor(t, r, "spiffe://cluster.local/ns/frontend/sa/web"); err != nil {
		t.Fatalf("issuing after node renewal: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, nodeKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node key file: %v %v", fi, err)
	}

	again, err := NewRemoteCA(ctx, remoteConfig(t, c, addr, "node-1", "", dir))
	if err != nil {
		t.Fatalf("restart from the state dir without a token: %v", err)
	}
	defer again.Close()
	if _, err := issueFor(t, again, "spiffe://cluster.local/ns/frontend/sa/web"); err != nil {
		t.Fatalf("issuing after restart: %v", err)
	}

	// The saved certificate is node-1's: it does not make a node-2.
	if _, err := NewRemoteCA(ctx, remoteConfig(t, c, addr, "node-2", "", dir)); err == nil {
		t.Error("node-2 started from node-1's saved certificate")
	}
	if _, err := NewRemoteCA(ctx, remoteConfig(t, c, addr, "node-1", "", t.TempDir())); err == nil {
		t.Error("a node with neither token nor saved certificate started")
	}
}
