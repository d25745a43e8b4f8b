package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/credentials/tls/certprovider/pemfile" // file_watcher plugin
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/translate"
)

// identityMesh is Ward's CA (certificate service over TLS) and xDS server
// on loopback, with PeerAuthentication wired into the translator the way
// `ward serve` does it.
type identityMesh struct {
	t    *testing.T
	ca   *ca.CA
	caAt string
	xds  *xds.Server
	xdAt string
	dir  string
	// xdsTLS serves xDS with the CA's 15012 TLS config (as `ward serve`
	// does on 15012) instead of plaintext.
	xdsTLS bool
}

// The CA runs on the wall clock: grpc-go verifies certificates against
// time.Now, so a fake clock cannot move certificate validity. Lifetimes are
// therefore seconds long, and the test waits on events (new identities,
// rotation phases), never on fixed sleeps.
const (
	leafTTL         = 8 * time.Second
	rotationOverlap = 2 * time.Second
)

func newIdentityMesh(t *testing.T, xdsTLS bool) *identityMesh {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := ca.New(ca.Config{
		StateDir: t.TempDir(), TrustDomain: "example.org", Log: log,
		DefaultTTL: leafTTL, MaxTTL: leafTTL, RotationOverlap: rotationOverlap, ReconcileInterval: 50 * time.Millisecond,
		ServerNames: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &identityMesh{t: t, ca: c, dir: t.TempDir(), xdsTLS: xdsTLS}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	caLis := listenLoopback(t)
	cs := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(cs)
	go cs.Serve(caLis)
	t.Cleanup(cs.Stop)
	m.caAt = caLis.Addr().String()

	m.xds = xds.NewServer(xds.Config{Log: log, Hooks: translate.Hooks{InboundSecurity: strictGRPC}})
	xl := listenLoopback(t)
	xs := grpc.NewServer(m.xds.ServerOptions()...)
	if xdsTLS {
		xs = grpc.NewServer(append(m.xds.ServerOptions(), grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))...)
	}
	m.xds.Register(xs)
	go xs.Serve(xl)
	t.Cleanup(func() { xs.Stop(); m.xds.Close() })
	m.xdAt = xl.Addr().String()
	return m
}

// strictGRPC requires mesh mTLS on a proxyless server's inbound port when
// PeerAuthentication says STRICT.
func strictGRPC(s *mesh.Snapshot, p *mesh.Proxy, port uint32) []translate.ChainSecurity {
	if authn.EffectiveMode(s, p.Namespace, p.Labels, port) != authn.ModeStrict {
		return nil
	}
	return []translate.ChainSecurity{{TransportSocket: authn.TLSSocket(authn.GRPCServerTLS())}}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (m *identityMesh) apply(yaml string) {
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
	m.xds.UpdateNow(res.Snapshot)
}

// enrol starts a ward agent for ns/sa with a fresh join token, writing the
// proxyless files and bootstrap to its own directory.
func (m *identityMesh) enrol(name, ns, sa, ip string, labels map[string]string) (*agent.Agent, string) {
	m.t.Helper()
	tok, err := m.ca.Tokens().Create(ns, sa, time.Minute)
	if err != nil {
		m.t.Fatal(err)
	}
	dir := m.t.TempDir()
	a, err := agent.New(agent.Config{
		CAAddr: m.caAt, TrustDomain: "example.org", CABundlePEM: m.ca.BundlePEM(), JoinToken: tok.String(),
		OutputDir: dir,
		Bootstrap: &agent.GRPCBootstrapConfig{XDSAddress: m.xdAt, XDSInsecure: !m.xdsTLS, Name: name, IP: ip, Labels: labels,
			RefreshInterval: 50 * time.Millisecond},
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
		Log: slog.New(slog.NewTextHandler(testWriter{m.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		m.t.Fatal(err)
	}
	ch := a.Changed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	m.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		m.t.Fatalf("agent %s/%s not enrolled within 20s", ns, sa)
	}
	return a, dir
}

func readBootstrap(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, agent.FileBootstrap))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idBackend answers with its name and records the client certificate of
// the last call it served.
type idBackend struct {
	testgrpc.UnimplementedTestServiceServer
	mu       sync.Mutex
	lastPeer *x509.Certificate
}

func (b *idBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	p, _ := peer.FromContext(ctx)
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.PermissionDenied, "no client certificate")
	}
	b.mu.Lock()
	b.lastPeer = ti.State.PeerCertificates[0]
	b.mu.Unlock()
	return &testgrpc.SimpleResponse{Hostname: "server"}, nil
}

func (b *idBackend) peerCert() *x509.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastPeer
}

const identityConfig = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: shop}
spec:
  host: echo.shop.test
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, subjectAltNames: [%q]}
---
`

// TestIdentityMTLSRotation: two proxyless grpc-go workloads enrolled by
// join token talk mTLS through Ward's xDS (client SAN pinning, server
// requiring client certificates) with identities from Ward's CA; a leaf
// rotation and a full root rotation happen under continuous traffic
// without a failed RPC or a restart.
func TestIdentityMTLSRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	m := newIdentityMesh(t, false)
	const serverID = "spiffe://example.org/ns/shop/sa/server"
	srvLis := listenLoopback(t)
	port := srvLis.Addr().(*net.TCPAddr).Port
	m.apply(fmt.Sprintf(identityConfig, serverID) + echoService("echo.shop.test", "shop", "echo") +
		workloadEntry("server-0", "shop", port, map[string]string{"app": "echo"}))

	srvAgent, srvDir := m.enrol("server-0", "shop", "server", "127.0.0.1", map[string]string{"app": "echo"})
	cliAgent, cliDir := m.enrol("client-0", "shop", "client", "127.0.0.2", map[string]string{"app": "client"})
	backend := startSecureServer(t, srvLis, readBootstrap(t, srvDir))
	client := secureClient(t, readBootstrap(t, cliDir), "echo.shop.test:7070")

	// Identities: the server saw the client's Ward certificate, the client
	// pinned and saw the server's.
	var sp peer.Peer
	if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}, grpc.WaitForReady(true), grpc.Peer(&sp)); err != nil {
		t.Fatalf("first mTLS call: %v", err)
	}
	if got := leafOf(t, &sp).URIs[0].String(); got != serverID {
		t.Fatalf("client talked to %s, want %s", got, serverID)
	}
	if got := backend.peerCert().URIs[0].String(); got != "spiffe://example.org/ns/shop/sa/client" {
		t.Fatalf("server saw client %s", got)
	}

	// The server requires a client certificate: TLS without one is refused.
	anon, err := grpc.NewClient(srvLis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = testgrpc.NewTestServiceClient(anon).UnaryCall(actx, &testgrpc.SimpleRequest{})
	acancel()
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}

	traffic := startTraffic(t, client)

	// Leaf rotation, forced now (the agents also rotate on their own at half
	// life): the next connections use the new certificates.
	forceRenew(t, srvAgent, cliAgent)
	waitServing(t, "rotated certificates", backend, traffic, srvAgent, cliAgent)

	// Root rotation: staged (new root in every bundle), switched (leaves
	// signed by the new root), old root dropped once its leaves expired.
	oldRoot := m.ca.Roots()[0]
	if err := m.ca.Rotate(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	forceRenew(t, srvAgent, cliAgent)
	waitBundle(t, srvDir, 2)
	waitBundle(t, cliDir, 2)
	waitPhase(t, m.ca, ca.PhaseRetiring)
	forceRenew(t, srvAgent, cliAgent)
	waitServing(t, "leaves signed by the new root", backend, traffic, srvAgent, cliAgent)
	if leafIssuedBy(backend.peerCert(), oldRoot) {
		t.Fatal("client still presents a leaf from the old root")
	}
	waitPhase(t, m.ca, ca.PhaseStable)
	forceRenew(t, srvAgent, cliAgent)
	waitBundle(t, srvDir, 1)
	waitBundle(t, cliDir, 1)
	waitServing(t, "bundle without the old root", backend, traffic, srvAgent, cliAgent)
	if m.ca.Roots()[0].Equal(oldRoot) {
		t.Fatal("the old root is still the bundle")
	}

	n, failures := traffic.stop()
	if len(failures) > 0 {
		t.Fatalf("%d of %d RPCs failed during rotation; first: %v", len(failures), n, failures[0])
	}
	t.Logf("%d RPCs, none failed, across leaf and root rotation", n)

	// SAN pinning is enforced: a client pinned to another identity cannot
	// complete the handshake with the server.
	m.apply(fmt.Sprintf(identityConfig, "spiffe://example.org/ns/shop/sa/impostor") + echoService("echo.shop.test", "shop", "echo") +
		workloadEntry("server-0", "shop", port, map[string]string{"app": "echo"}))
	_, otherDir := m.enrol("client-1", "shop", "client", "127.0.0.3", map[string]string{"app": "client"})
	pinned := secureClient(t, readBootstrap(t, otherDir), "echo.shop.test:7070")
	eventually(t, "pinned client refused", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := pinned.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err == nil {
			return fmt.Errorf("call to a server outside the pinned SANs succeeded")
		}
		if codeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "SANs") {
			return fmt.Errorf("pinned client failed for another reason: %v", err)
		}
		return nil
	})
}

func leafOf(t *testing.T, p *peer.Peer) *x509.Certificate {
	t.Helper()
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		t.Fatalf("connection is not TLS (%T): xDS security was not applied", p.AuthInfo)
	}
	return ti.State.PeerCertificates[0]
}

func leafIssuedBy(leaf, root *x509.Certificate) bool { return leaf.CheckSignatureFrom(root) == nil }

func startSecureServer(t *testing.T, lis net.Listener, boot []byte) *idBackend {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	var once atomic.Bool
	s, err := grpcxds.NewGRPCServer(grpc.Creds(creds), grpcxds.BootstrapContentsForTesting(boot),
		// Connections are recycled so rotated certificates are used by new
		// handshakes; the grace lets in-flight calls finish.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 300 * time.Millisecond, MaxConnectionAgeGrace: 5 * time.Second}),
		grpcxds.ServingModeCallback(func(_ net.Addr, a grpcxds.ServingModeChangeArgs) {
			if a.Mode == connectivity.ServingModeServing && once.CompareAndSwap(false, true) {
				close(serving)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	b := &idBackend{}
	testgrpc.RegisterTestServiceServer(s, b)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	select {
	case <-serving:
	case <-time.After(20 * time.Second):
		t.Fatal("server never got its listener from Ward")
	}
	return b
}

func secureClient(t *testing.T, boot []byte, target string) testgrpc.TestServiceClient {
	t.Helper()
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := grpcxds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// traffic issues RPCs back to back (no WaitForReady: a broken handshake
// fails the call) and records what the client saw of the server.
type traffic struct {
	mu       sync.Mutex
	n        int
	failures []error
	server   *x509.Certificate
	cancel   context.CancelFunc
	done     chan struct{}
}

func startTraffic(t *testing.T, c testgrpc.TestServiceClient) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		pace := time.NewTicker(2 * time.Millisecond) // about 500 calls/s: enough traffic, little CPU
		defer pace.Stop()
		for ctx.Err() == nil {
			<-pace.C
			var p peer.Peer
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Peer(&p))
			ccancel()
			tr.mu.Lock()
			if ctx.Err() == nil {
				tr.n++
				if err != nil {
					tr.failures = append(tr.failures, err)
				} else if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
					tr.server = ti.State.PeerCertificates[0]
				}
			}
			tr.mu.Unlock()
		}
	}()
	t.Cleanup(func() { tr.stop() })
	return tr
}

func (tr *traffic) serverCert() *x509.Certificate {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.server
}

func (tr *traffic) summary() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) == 0 {
		return fmt.Sprintf("%d calls, no failures", tr.n)
	}
	return fmt.Sprintf("%d calls, %d failures, last: %v", tr.n, len(tr.failures), tr.failures[len(tr.failures)-1])
}

func (tr *traffic) stop() (int, []error) {
	tr.cancel()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.n, tr.failures
}

func forceRenew(t *testing.T, agents ...*agent.Agent) {
	t.Helper()
	for _, a := range agents {
		if err := a.Renew(context.Background()); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
}

// waitServing waits until traffic uses the agents' current certificates in
// both directions (grpc re-reads the files, new connections use them).
func waitServing(t *testing.T, what string, b *idBackend, tr *traffic, srv, cli *agent.Agent) {
	t.Helper()
	eventually(t, what, func() error {
		wantCli, wantSrv := cli.Current().Certs[0], srv.Current().Certs[0]
		if c := b.peerCert(); c == nil || !c.Equal(wantCli) {
			return fmt.Errorf("server still sees client serial %s, want %s (%s)", serial(c), serial(wantCli), tr.summary())
		}
		if s := tr.serverCert(); s == nil || !s.Equal(wantSrv) {
			return fmt.Errorf("client still sees server serial %s, want %s (%s)", serial(s), serial(wantSrv), tr.summary())
		}
		return nil
	})
}

func serial(c *x509.Certificate) string {
	if c == nil {
		return "<none>"
	}
	return c.SerialNumber.Text(16)
}

func waitBundle(t *testing.T, dir string, roots int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d roots in %s", roots, agent.FileRoots), func() error {
		b, err := os.ReadFile(filepath.Join(dir, agent.FileRoots))
		if err != nil {
			return err
		}
		if n := countCerts(b); n != roots {
			return fmt.Errorf("%d roots", n)
		}
		return nil
	})
}

func countCerts(b []byte) int {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return len(p.Subjects()) //nolint:staticcheck // counting only
}

func waitPhase(t *testing.T, c *ca.CA, phase string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ch := c.Changed()
		if c.Phase() == phase {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("CA never reached phase %s (now %s)", phase, c.Phase())
		}
	}
}

// TestIdentityXDSOverTLS: the agents' grpc bootstraps reach Ward's xDS
// over TLS with their own certificates ("tls" channel creds), against a
// server using the CA's 15012 TLS config, and mTLS traffic flows.
func TestIdentityXDSOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	m := newIdentityMesh(t, true)
	srvLis := listenLoopback(t)
	m.apply(fmt.Sprintf(identityConfig, "spiffe://example.org/ns/shop/sa/server") + echoService("echo.shop.test", "shop", "echo") +
		workloadEntry("server-0", "shop", srvLis.Addr().(*net.TCPAddr).Port, map[string]string{"app": "echo"}))
	_, srvDir := m.enrol("server-0", "shop", "server", "127.0.0.1", map[string]string{"app": "echo"})
	_, cliDir := m.enrol("client-0", "shop", "client", "127.0.0.2", map[string]string{"app": "client"})
	boot := readBootstrap(t, cliDir)
	if !strings.Contains(string(boot), `"type": "tls"`) {
		t.Fatalf("bootstrap does not use tls channel creds:\n%s", boot)
	}
	backend := startSecureServer(t, srvLis, readBootstrap(t, srvDir))
	client := secureClient(t, boot, "echo.shop.test:7070")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call through xDS over TLS: %v", err)
	}
	if got := backend.peerCert().URIs[0].String(); got != "spiffe://example.org/ns/shop/sa/client" {
		t.Errorf("server saw %s", got)
	}
}
