package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/translate"
)

// authnHooks wires authn into the xDS core the way `ward serve` does.
func authnHooks() translate.Hooks {
	return translate.Hooks{
		InboundSecurity: func(s *mesh.Snapshot, p *mesh.Proxy, port uint32) []translate.ChainSecurity {
			vs, _ := authn.InboundVariants(s, p, port, authn.PortProtocol(s, p, port))
			out := make([]translate.ChainSecurity, 0, len(vs))
			for _, v := range vs {
				out = append(out, translate.ChainSecurity{Match: v.Match, TransportSocket: v.TransportSocket})
			}
			return out
		},
		UpstreamTLS: authn.UpstreamTLSHook,
		Fingerprint: func(s *mesh.Snapshot, p *mesh.Proxy) string { return authn.Fingerprint(s, p, nil) },
	}
}

// authnMesh is a control plane with authn hooks fed by a watched config
// directory, and a Ward CA issuing workload identities.
type authnMesh struct {
	*xdsMesh
	ca *ca.CA
	// secureAddr is ADS over mTLS, assembled as ward serve's 15012: the
	// bootstraps identity writes use it with the workload's certificate.
	secureAddr string
}

func newAuthnMesh(t *testing.T, initial string) *authnMesh {
	t.Helper()
	return newSecureMesh(t, initial, authnHooks())
}

// newSecureMesh is a control plane with the given security hooks, fed by a
// watched config directory, and a Ward CA issuing workload identities.
func newSecureMesh(t *testing.T, initial string, hooks translate.Hooks) *authnMesh {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := xds.NewServer(xds.Config{Log: log, Hooks: hooks})
	g := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	m := &xdsMesh{t: t, srv: srv, addr: lis.Addr().String(), dir: t.TempDir()}
	m.write(initial)
	src, err := file.New(file.Config{Dir: m.dir, Log: log, Quiet: 20 * time.Millisecond, MaxWait: 200 * time.Millisecond, OnSnapshot: srv.UpdateNow})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; g.Stop(); srv.Close() })
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Log: log, ServerNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	slis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sg := grpc.NewServer(append(srv.ServerOptions(), grpc.Creds(credentials.NewTLS(authority.ServerTLSConfig())))...)
	srv.RegisterSecure(sg, xds.AuthenticatorFunc(authority.PeerIdentity))
	go func() { _ = sg.Serve(slis) }()
	t.Cleanup(sg.Stop)
	return &authnMesh{xdsMesh: m, ca: authority, secureAddr: slis.Addr().String()}
}

func (m *xdsMesh) write(yaml string) {
	m.t.Helper()
	tmp := filepath.Join(m.dir, ".mesh.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "mesh.yaml")); err != nil {
		m.t.Fatal(err)
	}
}

// identity issues a Ward certificate for ns/sa and writes the agent's
// proxyless file layout and grpc bootstrap; it returns the bootstrap.
func (m *authnMesh) identity(ns, sa, name, ip string, labels map[string]string) []byte {
	m.t.Helper()
	id, dir := m.issue(ns, sa)
	boot, err := agent.GRPCBootstrap(agent.GRPCBootstrapConfig{XDSAddress: m.secureAddr, Name: name, IP: ip, Labels: labels}, id, dir)
	if err != nil {
		m.t.Fatal(err)
	}
	return boot
}

// identityPlaintextXDS is identity with the xDS stream on the plaintext
// port: @grpc/grpc-js-xds has no tls channel credentials for it (see
// docs/xds.md), so its workloads reach Ward the way that doc describes.
func (m *authnMesh) identityPlaintextXDS(ns, sa, name, ip string, labels map[string]string) []byte {
	m.t.Helper()
	id, dir := m.issue(ns, sa)
	boot, err := agent.GRPCBootstrap(agent.GRPCBootstrapConfig{XDSAddress: m.addr, XDSInsecure: true, Name: name, IP: ip, Labels: labels}, id, dir)
	if err != nil {
		m.t.Fatal(err)
	}
	return boot
}

// issue issues a Ward certificate for ns/sa and writes the agent's
// proxyless file layout (cert-chain.pem, key.pem, root-cert.pem, the
// names Istio's agent uses too) into a new directory.
func (m *authnMesh) issue(ns, sa string) (spiffeid.ID, string) {
	m.t.Helper()
	dir := m.t.TempDir()
	id := spiffeid.RequireFromString(fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	issued, err := m.ca.Sign(ca.Params{ID: id, PublicKey: key.Public(), TTL: time.Hour})
	if err != nil {
		m.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		m.t.Fatal(err)
	}
	files := map[string][]byte{
		agent.FileCertChain: []byte(strings.Join(issued.Chain[:len(issued.Chain)-1], "")),
		agent.FileKey:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		agent.FileRoots:     m.ca.BundlePEM(),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	return id, dir
}

// peerBackend records the SPIFFE ID of each caller (empty for plaintext).
type peerBackend struct {
	testgrpc.UnimplementedTestServiceServer
	mu    sync.Mutex
	peers []string
}

func (b *peerBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	id := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 && len(ti.State.PeerCertificates[0].URIs) > 0 {
			id = ti.State.PeerCertificates[0].URIs[0].String()
		}
	}
	b.mu.Lock()
	b.peers = append(b.peers, id)
	b.mu.Unlock()
	return &testgrpc.SimpleResponse{Hostname: "echo", Username: id}, nil
}

func authnConfig(port int, mode string) string {
	return echoService("echo.test", "ns", "echo") +
		workloadEntry("echo-1", "ns", port, map[string]string{"app": "echo", mesh.LabelTLSMode: "istio"}) +
		fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ns}
spec:
  mtls: {mode: %s}
`, mode)
}

// TestAuthnStrictRefusesPlaintextThenDisable runs a proxyless grpc-go
// server under STRICT: a plaintext client is refused, a client with a
// Ward-issued identity gets through over mTLS (and the server sees its
// SPIFFE ID); switching the namespace policy to DISABLE in the config
// directory lets the plaintext client in without restarting anything.
func TestAuthnStrictRefusesPlaintextThenDisable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	m := newAuthnMesh(t, authnConfig(port, "STRICT"))

	// The server: a grpc xDS server whose security comes from Ward.
	srvBoot := m.identity("ns", "default", "echo-1", "127.0.0.1", map[string]string{"app": "echo", mesh.LabelTLSMode: "istio"})
	be := &peerBackend{}
	serveXDS(t, "the grpc server", lis, srvBoot, be, wardServerCreds(t))

	// A plaintext client dialling the server directly.
	plainConn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plainConn.Close() })
	plain := testgrpc.NewTestServiceClient(plainConn)
	plainCall := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := plain.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}

	// An mTLS client with a Ward identity, through Ward (auto-mTLS).
	cliBoot := m.identity("ns", "client", "client-1", "127.0.0.2", map[string]string{"app": "client"})
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(cliBoot)
	if err != nil {
		t.Fatal(err)
	}
	clientCreds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	meshConn, err := grpc.NewClient("xds:///echo.test:7070", grpc.WithResolvers(resolver), grpc.WithTransportCredentials(clientCreds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meshConn.Close() })
	meshClient := testgrpc.NewTestServiceClient(meshConn)

	// STRICT: the mesh client gets through with its identity.
	resp, err := meshClient.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("mTLS client under STRICT: %v", err)
	}
	if want := "spiffe://cluster.local/ns/ns/sa/client"; resp.GetUsername() != want {
		t.Fatalf("server saw peer %q, want %q", resp.GetUsername(), want)
	}
	// STRICT: plaintext is refused (the handshake fails, nothing reaches the handler).
	before := len(be.peersSnapshot())
	if err := plainCall(); err == nil {
		t.Fatal("a plaintext client reached a STRICT server")
	}
	if n := len(be.peersSnapshot()); n != before {
		t.Fatal("the refused plaintext call reached the handler")
	}

	// STRICT → DISABLE through the watched config directory.
	m.write(authnConfig(port, "DISABLE"))
	eventually(t, "plaintext accepted after DISABLE", plainCall)
	eventually(t, "mesh client after DISABLE (auto-mTLS falls back to plaintext)", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := meshClient.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err != nil {
			return err
		}
		if r.GetUsername() != "" {
			return fmt.Errorf("still mTLS (peer %q)", r.GetUsername())
		}
		return nil
	})
}

func (b *peerBackend) peersSnapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.peers...)
}
