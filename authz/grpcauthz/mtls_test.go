package grpcauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/ca"
)

func TestFileNamesAreTheAgents(t *testing.T) {
	if FileCertChain != agent.FileCertChain || FileKey != agent.FileKey || FileRoots != agent.FileRoots {
		t.Fatalf("file names %q %q %q differ from the agent's %q %q %q",
			FileCertChain, FileKey, FileRoots, agent.FileCertChain, agent.FileKey, agent.FileRoots)
	}
}

// writeIdentity writes what `ward agent --output-dir` writes for id: the
// chain without the bundle, the PKCS#8 key, the roots. It returns the
// leaf.
func writeIdentity(t *testing.T, authority *ca.CA, dir, id string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := authority.Sign(ca.Params{ID: spiffeid.RequireFromString(id), PublicKey: key.Public(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		FileRoots:     authority.BundlePEM(),
		FileKey:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		FileCertChain: []byte(strings.Join(issued.Chain[:len(issued.Chain)-1], "")),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return issued.Leaf
}

// secureExtAuthz serves Ward's ext_authz as ward serve does on its secure
// port: the CA's server TLS config, caller-bound checks.
func secureExtAuthz(t *testing.T, authority *ca.CA, log *syncBuffer) string {
	t.Helper()
	dl, err := decisionlog.New(decisionlog.Config{Writer: log})
	if err != nil {
		t.Fatal(err)
	}
	s := extauthz.New(extauthz.Config{Decisions: dl, Timeout: time.Minute})
	if err := s.Update(snapshot(t, policies(`{"keys":[]}`))); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(authority.ServerTLSConfig())))
	s.RegisterMTLS(g, extauthz.PeerConfig{TrustDomain: authority.TrustDomain(), Roots: authority.Roots})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestMTLSFromDir: the interceptor of shop/cart, holding the agent's files,
// reaches Ward's ext_authz over mTLS and gets decisions; it cannot ask
// about another namespace; and it will not talk to a server that is not
// the control plane.
func TestMTLSFromDir(t *testing.T) {
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	azAddr := secureExtAuthz(t, authority, &log)
	dir := t.TempDir()
	writeIdentity(t, authority, dir, "spiffe://cluster.local/ns/shop/sa/cart")
	p := newPKI(t)

	protect := func(ns string, serverID spiffeid.ID) testgrpc.TestServiceClient {
		opt, err := MTLSFromDir(dir, serverID)
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(Config{Target: azAddr, DialOptions: []grpc.DialOption{opt}, Namespace: ns, Labels: map[string]string{"app": "cart"}, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return client(t, p, serve(t, p, a), "spiffe://cluster.local/ns/shop/sa/web")
	}
	ctx := context.Background()

	if _, err := protect("shop", authority.ServerID()).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("web -> cart through ext_authz over mTLS: %v", err)
	}
	_, err = protect("bank", authority.ServerID()).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "caller_forbidden") {
		t.Errorf("shop's certificate asking about bank: %v, want PermissionDenied (caller_forbidden)", err)
	}
	impostor := spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/impostor")
	_, err = protect("shop", impostor).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "ext_authz unavailable") {
		t.Errorf("a server that is not %s: %v, want the RPC denied as ext_authz unavailable", impostor, err)
	}
	if s := log.String(); strings.Count(s, "\n") != 2 || !strings.Contains(s, `"reason":"caller_forbidden"`) {
		t.Errorf("decision log: want one allow and one caller_forbidden:\n%s", s)
	}
}

// TestMTLSFromDirRotation: every handshake reads the files again, so a
// rotated certificate is presented on the next connection; a half-written
// rotation (new key, old chain) keeps the last good pair.
func TestMTLSFromDirRotation(t *testing.T) {
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := writeIdentity(t, authority, dir, "spiffe://cluster.local/ns/shop/sa/cart")
	tc, err := tlsConfigFromDir(dir, authority.ServerID())
	if err != nil {
		t.Fatal(err)
	}
	presented := func() *x509.Certificate {
		c, err := tc.GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	if !presented().Equal(first) {
		t.Fatal("the first handshake does not present the files' certificate")
	}
	second := writeIdentity(t, authority, dir, "spiffe://cluster.local/ns/shop/sa/cart")
	if !presented().Equal(second) {
		t.Fatal("after rotation the next handshake still presents the old certificate")
	}
	// The agent has replaced the key but not yet the chain.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, FileKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if !presented().Equal(second) {
		t.Fatal("a mismatched key and chain replaced the last good pair")
	}
}

func TestMTLSFromDirErrors(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/ward")
	if _, err := MTLSFromDir(t.TempDir(), id); err == nil || !strings.Contains(err.Error(), "read workload certificate") {
		t.Errorf("empty dir: %v, want a read error", err)
	}
	if _, err := MTLSFromDir(t.TempDir(), spiffeid.ID{}); err == nil {
		t.Error("a zero server ID was accepted")
	}
}
