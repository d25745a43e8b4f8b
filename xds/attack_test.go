package xds_test

// Regression tests for issue #13's xDS attacks: each performs the attack
// against the real server on loopback (plaintext and mTLS ports) and
// asserts it fails. They use only the exported API, so they also run
// against the code before the fix (to measure "before").

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/hooks"
)

// The victim: bookinfo's reviews as a proxyless gRPC server. An
// AuthorizationPolicy in examples/ selects it, so its inbound listener
// carries Ward's RBAC filter ("ward.authz") unless the workload opted into
// enforcing through ext_authz (WARD_AUTHZ=ext-authz).
const victimID = "grpc~127.0.0.21~reviews-v1.bookinfo~bookinfo.svc.cluster.local"

func victimNode(extra map[string]any) *core.Node {
	m := map[string]any{"GENERATOR": "grpc", "NAMESPACE": "bookinfo", "SERVICE_ACCOUNT": "reviews", "INSTANCE_IPS": "127.0.0.21",
		"LABELS": map[string]any{"app": "reviews", "version": "v1"}}
	for k, v := range extra {
		m[k] = v
	}
	md, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return &core.Node{Id: victimID, Metadata: md}
}

func examples(t *testing.T) *mesh.Snapshot {
	t.Helper()
	res, err := file.Load("../examples")
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load examples: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

func newServer(t *testing.T, cfg xds.Config) *xds.Server {
	t.Helper()
	cfg.Hooks = hooks.New(hooks.Config{})
	s := xds.NewServer(cfg)
	t.Cleanup(s.Close)
	s.UpdateNow(examples(t))
	return s
}

// serve runs s on a fresh loopback port (plaintext, or mTLS when c is
// set) and returns the address.
func serve(t *testing.T, s *xds.Server, c *ca.CA, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s, c, lis, opts...)
	return lis.Addr().String()
}

func serveOn(t *testing.T, s *xds.Server, c *ca.CA, lis net.Listener, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, s.ServerOptions()...)
	if c != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	}
	g := grpc.NewServer(opts...)
	if c != nil {
		c.Register(g)
		s.RegisterSecure(g, xds.AuthenticatorFunc(c.PeerIdentity))
	} else {
		s.Register(g)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return g
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// result is one Recv.
type result struct {
	r   *discovery.DiscoveryResponse
	err error
}

// listeners opens an ADS stream as node, asks for every listener and
// returns the first response (or the stream's error), waiting at most 10s.
func listeners(t *testing.T, cc *grpc.ClientConn, node *core.Node) ([]*listener.Listener, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return listenersCtx(t, ctx, cc, node)
}

// listenersCtx is listeners on a stream that lives as long as ctx.
func listenersCtx(t *testing.T, ctx context.Context, cc *grpc.ClientConn, node *core.Node, opts ...grpc.CallOption) ([]*listener.Listener, error) {
	t.Helper()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx, append([]grpc.CallOption{grpc.WaitForReady(true)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil && err != io.EOF {
		return nil, err // io.EOF: the server ended the stream; Recv has its status
	}
	ch := make(chan result, 1)
	go func() { r, err := st.Recv(); ch <- result{r, err} }()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		var out []*listener.Listener
		for _, a := range res.r.GetResources() {
			l := &listener.Listener{}
			if err := a.UnmarshalTo(l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return out, nil
	case <-time.After(10 * time.Second):
		t.Fatalf("%.40s: no listener response within 10s", node.GetId())
		return nil, nil
	}
}

// inboundAuthz reports whether the victim's inbound listener exists and
// whether it carries Ward's RBAC filter.
func inboundAuthz(t *testing.T, ls []*listener.Listener) (inbound, rbac bool) {
	t.Helper()
	for _, l := range ls {
		if !strings.HasPrefix(l.GetName(), "grpc/server") {
			continue
		}
		inbound = true
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcm.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(m) != nil {
					continue
				}
				for _, hf := range m.GetHttpFilters() {
					if strings.HasPrefix(hf.GetName(), "ward.authz") {
						rbac = true
					}
				}
			}
		}
	}
	return inbound, rbac
}

// Node-id squatting on the plaintext port: an attacker claims the
// victim's node id first, with labels no policy selects and
// WARD_AUTHZ=ext-authz. The victim's own stream must still get its own
// config (inbound listener with RBAC), and the attacker's unauthenticated
// ext-authz opt-out is ignored.
func TestAttackNodeSquattingPlaintext(t *testing.T) {
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, nil), nil)
	squat := victimNode(map[string]any{"WARD_AUTHZ": "ext-authz", "LABELS": map[string]any{"app": "nobody"}})
	if _, err := listeners(t, cc, squat); err != nil {
		t.Fatalf("attacker stream: %v", err)
	}
	ls, err := listeners(t, cc, victimNode(nil))
	if err != nil {
		t.Fatalf("victim stream: %v", err)
	}
	if inbound, rbac := inboundAuthz(t, ls); !inbound || !rbac {
		t.Fatalf("victim after a squatter: inbound listener %v, RBAC %v; want both (config built from the squatter's metadata)", inbound, rbac)
	}
	// Same id, own labels, ext-authz on plaintext: ignored, RBAC stays.
	ls, err = listeners(t, cc, victimNode(map[string]any{"WARD_AUTHZ": "ext-authz"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, rbac := inboundAuthz(t, ls); !rbac {
		t.Fatal("WARD_AUTHZ=ext-authz on a plaintext stream dropped RBAC")
	}
}

// Squatting across a control-plane restart: after the restart the
// attacker connects first; the victim's later stream still gets its own
// config.
func TestAttackNodeSquattingAfterRestart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	g := serveOn(t, newServer(t, xds.Config{}), nil, lis)
	victim := dial(t, addr, nil)
	if _, err := listeners(t, victim, victimNode(nil)); err != nil {
		t.Fatal(err)
	}
	g.Stop() // the control plane goes away; the victim will reconnect
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	serveOn(t, newServer(t, xds.Config{}), nil, lis)
	attacker := dial(t, addr, nil)
	if _, err := listeners(t, attacker, victimNode(map[string]any{"WARD_AUTHZ": "ext-authz", "LABELS": map[string]any{"app": "nobody"}})); err != nil {
		t.Fatalf("attacker after restart: %v", err)
	}
	// The victim reconnects (a fresh connection: its old one may still be
	// failing fast on the stopped server's transport).
	victim = dial(t, addr, nil)
	ls, err := listeners(t, victim, victimNode(nil))
	if err != nil {
		t.Fatalf("victim after restart: %v", err)
	}
	if inbound, rbac := inboundAuthz(t, ls); !inbound || !rbac {
		t.Fatalf("victim after restart and squatter: inbound %v, RBAC %v; want both", inbound, rbac)
	}
}

// testCA is a real Ward CA whose serving certificate names localhost.
func testCA(t *testing.T) *ca.CA {
	t.Helper()
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", ServerNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// workloadCreds are client credentials with a certificate for ns/sa
// (nil ns: no client certificate).
func workloadCreds(t *testing.T, c *ca.CA, ns, sa string) credentials.TransportCredentials {
	t.Helper()
	roots := x509.NewCertPool()
	for _, r := range c.Roots() {
		roots.AddCert(r)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if ns != "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id := spiffeid.RequireFromString(fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa))
		iss, err := c.Sign(ca.Params{ID: id, PublicKey: key.Public(), Method: ca.MethodMTLS})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{iss.Leaf.Raw}, PrivateKey: crypto.Signer(key), Leaf: iss.Leaf}}
	}
	return credentials.NewTLS(cfg)
}

// Squatting on the secure port: a workload certificate for another
// identity cannot claim the victim's node (PermissionDenied naming the
// mismatch); the victim's own certificate is served, and there its
// ext-authz opt-out is honoured.
func TestAttackNodeSquattingSecure(t *testing.T) {
	c := testCA(t)
	s := newServer(t, xds.Config{})
	addr := serve(t, s, c)
	attacker := dial(t, addr, workloadCreds(t, c, "attacker", "evil"))
	_, err := listeners(t, attacker, victimNode(map[string]any{"WARD_AUTHZ": "ext-authz"}))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `namespace "attacker"`) {
		t.Fatalf("attacker with another identity's certificate: %v; want PermissionDenied naming the mismatch", err)
	}
	victim := dial(t, addr, workloadCreds(t, c, "bookinfo", "reviews"))
	ls, err := listeners(t, victim, victimNode(nil))
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	if inbound, rbac := inboundAuthz(t, ls); !inbound || !rbac {
		t.Fatalf("victim on the secure port: inbound %v RBAC %v", inbound, rbac)
	}
	ls, err = listeners(t, victim, victimNode(map[string]any{"WARD_AUTHZ": "ext-authz"}))
	if err != nil {
		t.Fatal(err)
	}
	if inbound, rbac := inboundAuthz(t, ls); !inbound || rbac {
		t.Fatalf("authenticated ext-authz opt-out: inbound %v RBAC %v; want inbound without RBAC", inbound, rbac)
	}
}

// Unauthenticated config on the secure port: ADS without a client
// certificate is refused, while the certificate service on the same port
// still serves a token-authenticated caller without one.
func TestAttackSecurePortWithoutCertificate(t *testing.T) {
	c := testCA(t)
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, c), workloadCreds(t, c, "", ""))
	if _, err := listeners(t, cc, victimNode(nil)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ADS without a client certificate: %v; want Unauthenticated", err)
	}
	tok, err := c.Tokens().Create("bookinfo", "reviews", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.String())
	resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	if err != nil || len(resp.GetCertChain()) == 0 {
		t.Fatalf("CSR with a join token and no client certificate: %v", err)
	}
}

// ACK withholding: 30 streams take every type's response and never ACK;
// a legitimate proxy's full sync (all four types, each ACKed) must still
// complete within the bounded wait. The measured time is logged.
func TestAttackACKWithholding(t *testing.T) {
	s := newServer(t, xds.Config{})
	addr := serve(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	types := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}
	var held sync.WaitGroup
	for i := range 30 {
		cc := dial(t, addr, nil)
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := &core.Node{Id: fmt.Sprintf("sidecar~10.9.0.%d~silent-%d.bookinfo~bookinfo.svc.cluster.local", i+1, i)}
		for j, typ := range types {
			req := &discovery.DiscoveryRequest{TypeUrl: typ}
			if j == 0 {
				req.Node = node
			}
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		held.Add(1)
		go func() { // read every response, answer none
			got := 0
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
				if got++; got == len(types) {
					held.Done()
				}
			}
		}()
	}
	waitGroup(t, &held, 30*time.Second, "the 30 silent streams did not all get their first responses")

	cc := dial(t, addr, nil)
	start := time.Now()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "sidecar~10.8.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local"}
	for j, typ := range types {
		req := &discovery.DiscoveryRequest{TypeUrl: typ}
		if j == 0 {
			req.Node = node
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		synced := map[string]bool{}
		for len(synced) < len(types) {
			r, err := st.Recv()
			if err != nil {
				done <- err
				return
			}
			synced[r.GetTypeUrl()] = true
			if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the legitimate proxy did not complete its sync within 10s while 30 streams withheld ACKs")
	}
	t.Logf("legitimate proxy full sync with 30 non-ACKing streams: %v", time.Since(start))
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// lockedBuffer is a log sink safe for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A stream cannot switch to another node id after its first request
// (go-control-plane would otherwise take the new node for later
// requests).
func TestAttackNodeSwitchMidStream(t *testing.T) {
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	own := &core.Node{Id: "sidecar~10.6.0.1~app.attacker~attacker.svc.cluster.local"}
	if err := st.Send(&discovery.DiscoveryRequest{Node: own, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&discovery.DiscoveryRequest{Node: victimNode(nil), TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("switching node mid-stream: %v; want InvalidArgument", err)
	}
}

// Squatting over delta xDS: the victim's delta stream is served from its
// own metadata, not from a squatter's earlier delta stream.
func TestAttackNodeSquattingDelta(t *testing.T) {
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, nil), nil)
	deltaListeners := func(node *core.Node) []*listener.Listener {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
			t.Fatal(err)
		}
		ch := make(chan *discovery.DeltaDiscoveryResponse, 1)
		go func() { r, _ := st.Recv(); ch <- r }()
		select {
		case r := <-ch:
			var out []*listener.Listener
			for _, res := range r.GetResources() {
				l := &listener.Listener{}
				if err := res.GetResource().UnmarshalTo(l); err != nil {
					t.Fatal(err)
				}
				out = append(out, l)
			}
			return out
		case <-time.After(10 * time.Second):
			t.Fatal("no delta listener response within 10s")
			return nil
		}
	}
	deltaListeners(victimNode(map[string]any{"WARD_AUTHZ": "ext-authz", "LABELS": map[string]any{"app": "nobody"}}))
	if inbound, rbac := inboundAuthz(t, deltaListeners(victimNode(nil))); !inbound || !rbac {
		t.Fatalf("victim's delta stream after a squatter: inbound %v RBAC %v; want both", inbound, rbac)
	}
}
