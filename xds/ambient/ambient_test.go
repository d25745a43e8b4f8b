package ambient_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/ambient"
	"github.com/wardmesh/ward/xds/hooks"
)

func we(name, ns, sa, addr, node string, extra map[string]string) *mesh.Config {
	l := map[string]string{"app": name, "istio.io/dataplane-mode": "ambient", "ward.io/node": node}
	for k, v := range extra {
		l[k] = v
	}
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindWorkloadEntry, Namespace: ns, Name: name},
		Spec: &networking.WorkloadEntry{Address: addr, ServiceAccount: sa, Labels: l}}
}

func ap(name, ns string, sel map[string]string, action security.AuthorizationPolicy_Action, principal string) *mesh.Config {
	spec := &security.AuthorizationPolicy{Action: action,
		Rules: []*security.Rule{{From: []*security.Rule_From{{Source: &security.Source{Principals: []string{principal}}}}}}}
	if sel != nil {
		spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
	}
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindAuthorizationPolicy, Namespace: ns, Name: name}, Spec: spec}
}

func pa(name, ns string, mode security.PeerAuthentication_MutualTLS_Mode) *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindPeerAuthentication, Namespace: ns, Name: name},
		Spec: &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: mode}}}
}

// world: a (frontend/web) on n1, b (shop/db) and e (evil/x) on n2.
func world(extra ...*mesh.Config) *mesh.Snapshot {
	cs := []*mesh.Config{
		we("a", "frontend", "web", "10.0.0.1", "n1", nil),
		we("b", "shop", "db", "10.0.0.2", "n2", nil),
		we("e", "evil", "x", "10.0.0.3", "n2", nil),
		pa("default", "istio-system", security.PeerAuthentication_MutualTLS_STRICT),
		pa("default", "shop", security.PeerAuthentication_MutualTLS_STRICT),
		pa("default", "legacy", security.PeerAuthentication_MutualTLS_PERMISSIVE),
		ap("deny-evil", "shop", map[string]string{"app": "b"}, security.AuthorizationPolicy_DENY, "cluster.local/ns/evil/sa/x"),
		ap("allow-all", "frontend", nil, security.AuthorizationPolicy_ALLOW, "*"),
		ap("unused", "shop", map[string]string{"app": "nothing"}, security.AuthorizationPolicy_DENY, "*"),
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, append(cs, extra...))
}

func names(cs []*mesh.Config) []string {
	var out []string
	for _, c := range cs {
		out = append(out, mcp.Name(c))
	}
	slices.Sort(out)
	return out
}

func TestScopeByNode(t *testing.T) {
	snap := world()
	n1, n2 := ambient.Scope(snap, "n1"), ambient.Scope(snap, "n2")
	if got := names(n1[mcp.TypeAuthorizationPolicy]); !slices.Equal(got, []string{"frontend/allow-all"}) {
		t.Errorf("n1 authz = %v", got)
	}
	if got := names(n2[mcp.TypeAuthorizationPolicy]); !slices.Equal(got, []string{"shop/deny-evil"}) {
		t.Errorf("n2 authz = %v (the unused selector and other namespaces must not be sent)", got)
	}
	if got := names(n1[mcp.TypePeerAuthentication]); !slices.Equal(got, []string{"istio-system/default"}) {
		t.Errorf("n1 peerauthn = %v", got)
	}
	if got := names(n2[mcp.TypePeerAuthentication]); !slices.Equal(got, []string{"istio-system/default", "shop/default"}) {
		t.Errorf("n2 peerauthn = %v", got)
	}
	if got := len(n1[mcp.TypeWorkloadEntry]); got != 3 {
		t.Errorf("n1 workloads = %d, want every address in the mesh (3)", got)
	}
	if got := ambient.Scope(snap, "n9")[mcp.TypeAuthorizationPolicy]; len(got) != 0 {
		t.Errorf("a node without workloads gets policies %v", names(got))
	}
}

// plainADS serves srv's node streams as node without authentication (the
// secure binding is tested below through xds.Server).
type plainADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	srv  *ambient.Server
	node string
}

func (p plainADS) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return p.srv.ServeNode(p.node, s)
}

func listen(t *testing.T, g *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// client is a minimal delta ADS client for the tests.
type client struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discovery.DeltaDiscoveryResponse
	errs   chan error
}

func open(t *testing.T, addr string, creds credentials.TransportCredentials, nodeID string) *client {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, stream: st, resps: make(chan *discovery.DeltaDiscoveryResponse, 64), errs: make(chan error, 1)}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				c.errs <- err
				return
			}
			c.resps <- r
		}
	}()
	for i, url := range mcp.NodeTypes {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: url}
		if i == 0 {
			req.Node = &core.Node{Id: nodeID}
		}
		if err := st.Send(req); err != nil {
			break // refused: Recv reports why
		}
	}
	return c
}

// next returns the next response or the stream's error (10s bound).
func (c *client) next() (*discovery.DeltaDiscoveryResponse, error) {
	select {
	case r := <-c.resps:
		return r, nil
	case err := <-c.errs:
		return nil, err
	case <-time.After(10 * time.Second):
		c.t.Fatal("no delta response within 10s")
		return nil, nil
	}
}

// ack answers r (NACK with detail when nack is set).
func (c *client) ack(r *discovery.DeltaDiscoveryResponse, nack string) {
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}
	if nack != "" {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// initial reads and ACKs the first response of every type.
func (c *client) initial() map[string]*discovery.DeltaDiscoveryResponse {
	out := map[string]*discovery.DeltaDiscoveryResponse{}
	for len(out) < len(mcp.NodeTypes) {
		r, err := c.next()
		if err != nil {
			c.t.Fatal(err)
		}
		out[r.GetTypeUrl()] = r
		c.ack(r, "")
	}
	return out
}

// quiet asserts nothing more arrives (the stream is drained up to a
// round trip: a fresh subscription to a served type is answered after
// any push queued before it).
func (c *client) noMore(t *testing.T) {
	t.Helper()
	select {
	case r := <-c.resps:
		t.Fatalf("unexpected push: %s %d resources, removed %v", r.GetTypeUrl(), len(r.GetResources()), r.GetRemovedResources())
	default:
	}
}

func resNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, x := range r.GetResources() {
		out = append(out, x.GetName())
	}
	return out
}

// answers counts ACKs and NACKs recorded by the server.
type answers chan bool

func (a answers) hook(_, _ string, nack bool) { a <- nack }

// wait blocks until n more answers are recorded (10s bound).
func (a answers) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-a:
		case <-time.After(10 * time.Second):
			t.Fatal("answer not recorded within 10s")
		}
	}
}

func TestDeltaIncrementalAndRemovals(t *testing.T) {
	acks := make(answers, 64)
	srv := ambient.New(ambient.Config{OnAnswer: acks.hook})
	if err := srv.Update(world()); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, plainADS{srv: srv, node: "n2"})
	c := open(t, listen(t, g), nil, "whatever")
	init := c.initial()
	acks.wait(t, len(mcp.NodeTypes))
	if got := resNames(init[mcp.TypeAuthorizationPolicy]); !slices.Equal(got, []string{"shop/deny-evil"}) {
		t.Fatalf("initial authz = %v", got)
	}
	if got := len(init[mcp.TypeWorkloadEntry].GetResources()); got != 3 {
		t.Fatalf("initial workloads = %d", got)
	}

	// One policy changes: exactly that AuthorizationPolicy is pushed.
	changed := ap("deny-evil", "shop", map[string]string{"app": "b"}, security.AuthorizationPolicy_DENY, "cluster.local/ns/frontend/sa/web")
	snap := world()
	cs := append(snap.All(mesh.KindWorkloadEntry), snap.All(mesh.KindPeerAuthentication)...)
	for _, x := range snap.All(mesh.KindAuthorizationPolicy) {
		if x.Name != "deny-evil" {
			cs = append(cs, x)
		}
	}
	if err := srv.Update(mesh.NewSnapshot(mesh.MeshConfig{}, append(cs, changed))); err != nil {
		t.Fatal(err)
	}
	r, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	if r.GetTypeUrl() != mcp.TypeAuthorizationPolicy || !slices.Equal(resNames(r), []string{"shop/deny-evil"}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("push = %s %v removed %v, want only AuthorizationPolicy shop/deny-evil", r.GetTypeUrl(), resNames(r), r.GetRemovedResources())
	}
	c.ack(r, "")
	acks.wait(t, 1)
	// Nothing else was pushed: a new snapshot equal for n2 sends nothing,
	// and the next push observed is the removal below.
	if err := srv.Update(mesh.NewSnapshot(mesh.MeshConfig{}, append(cs, changed, ap("other", "frontend", nil, security.AuthorizationPolicy_DENY, "x")))); err != nil {
		t.Fatal(err)
	}

	// The policy is deleted: sent as a removed resource.
	if err := srv.Update(mesh.NewSnapshot(mesh.MeshConfig{}, cs)); err != nil {
		t.Fatal(err)
	}
	r, err = c.next()
	if err != nil {
		t.Fatal(err)
	}
	if r.GetTypeUrl() != mcp.TypeAuthorizationPolicy || len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"shop/deny-evil"}) {
		t.Fatalf("push = %s %v removed %v, want the removal of shop/deny-evil", r.GetTypeUrl(), resNames(r), r.GetRemovedResources())
	}
	c.ack(r, "")
	acks.wait(t, 1)
	c.noMore(t)
	st := srv.Connections()
	if len(st) != 1 || st[0].Node != "n2" || st[0].Types["authz"].Acked != st[0].Types["authz"].Sent {
		t.Fatalf("connections = %+v", st)
	}
}

func TestNACKRecordedAndResentOnChange(t *testing.T) {
	acks := make(answers, 64)
	srv := ambient.New(ambient.Config{OnAnswer: acks.hook})
	if err := srv.Update(world()); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, plainADS{srv: srv, node: "n2"})
	c := open(t, listen(t, g), nil, "")
	for n := 0; n < len(mcp.NodeTypes); n++ {
		r, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		nack := ""
		if r.GetTypeUrl() == mcp.TypeAuthorizationPolicy {
			nack = "resource shop/deny-evil: bad"
		}
		c.ack(r, nack)
	}
	acks.wait(t, len(mcp.NodeTypes))
	// A later change resends the rejected resource (the node still holds
	// its previous state, here none).
	if err := srv.Update(world(ap("more", "shop", nil, security.AuthorizationPolicy_ALLOW, "*"))); err != nil {
		t.Fatal(err)
	}
	r, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	if got := resNames(r); !slices.Equal(got, []string{"shop/deny-evil", "shop/more"}) {
		t.Fatalf("after NACK, push = %v, want the rejected policy again with the new one", got)
	}
	st := srv.Connections()[0].Types["authz"]
	if st.Nacks != 1 || st.LastNack != "resource shop/deny-evil: bad" {
		t.Fatalf("status = %+v", st)
	}
}

// secure runs an xds.Server with node streams on an mTLS port of a real CA.
func secure(t *testing.T) (*ca.CA, string) {
	t.Helper()
	return secureWith(t, xds.Limits{})
}

func secureWith(t *testing.T, lim xds.Limits) (*ca.CA, string) {
	t.Helper()
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", ServerNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authority.Close() })
	nodes := ambient.New(ambient.Config{Auth: authority.PeerNode})
	if err := nodes.Update(world()); err != nil {
		t.Fatal(err)
	}
	s := xds.NewServer(xds.Config{Hooks: hooks.New(hooks.Config{}), Nodes: nodes, Limits: lim})
	t.Cleanup(s.Close)
	s.UpdateNow(world())
	g := grpc.NewServer(append(s.ServerOptions(), grpc.Creds(credentials.NewTLS(authority.ServerTLSConfig())))...)
	authority.Register(g)
	s.RegisterSecure(g, xds.AuthenticatorFunc(authority.PeerIdentity))
	return authority, listen(t, g)
}

// creds are client credentials with a certificate for id ("" = none).
func creds(t *testing.T, c *ca.CA, id string) credentials.TransportCredentials {
	t.Helper()
	roots := x509.NewCertPool()
	for _, r := range c.Roots() {
		roots.AddCert(r)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if id != "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := c.Sign(ca.Params{ID: spiffeid.RequireFromString(id), PublicKey: key.Public(), Method: ca.MethodMTLS})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{iss.Leaf.Raw}, PrivateKey: crypto.Signer(key), Leaf: iss.Leaf}}
	}
	return credentials.NewTLS(cfg)
}

const (
	nodeN1  = "spiffe://cluster.local/ns/ward-system/sa/ward-node/node/n1"
	sidecar = "spiffe://cluster.local/ns/frontend/sa/web"
)

// The node comes from the certificate: n1's certificate claiming node
// n2 in its Node message is served n1's view.
func TestSecureNodeStreamBoundToCertificate(t *testing.T) {
	authority, addr := secure(t)
	c := open(t, addr, creds(t, authority, nodeN1), "node~n2")
	init := c.initial()
	if got := resNames(init[mcp.TypeAuthorizationPolicy]); !slices.Equal(got, []string{"frontend/allow-all"}) {
		t.Fatalf("n1's certificate claiming n2 got authz %v, want n1's", got)
	}
}

func TestSecureNodeStreamRefusals(t *testing.T) {
	authority, addr := secure(t)
	for name, tc := range map[string]struct {
		id   string
		sotw bool
		want codes.Code
	}{
		"no certificate":                   {"", false, codes.Unauthenticated},
		"sidecar certificate, node types":  {sidecar, false, codes.PermissionDenied},
		"node certificate, state of world": {nodeN1, true, codes.PermissionDenied},
		"not a node identity":              {"spiffe://cluster.local/ns/ward-system/sa/ward-node/extra/n1", false, codes.Unauthenticated},
	} {
		t.Run(name, func(t *testing.T) {
			cr := creds(t, authority, tc.id)
			var err error
			if tc.sotw {
				err = sotw(t, addr, cr)
			} else {
				c := open(t, addr, cr, "node~n1")
				_, err = c.next()
			}
			if status.Code(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

// sotw opens a state-of-the-world ADS stream and returns its first error.
func sotw(t *testing.T, addr string, cr credentials.TransportCredentials) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(cr))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	// A Send error means the stream already ended: Recv says why.
	_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener", Node: &core.Node{Id: "sidecar~10.0.0.1~a.frontend~frontend.svc.cluster.local"}})
	_, err = st.Recv()
	return err
}

// The scope places workloads by the labels the CA issues by.
func TestPlacementLabels(t *testing.T) {
	if ca.LabelNode != "ward.io/node" || ca.LabelDataplaneMode != mesh.LabelDataplaneMode || ca.DataplaneAmbient != mesh.DataplaneAmbient {
		t.Fatal("ambient placement labels differ between ca, mesh and xds/ambient")
	}
}

// Node streams count against the xDS server's stream caps like any other.
func TestNodeStreamsCountInStreamCaps(t *testing.T) {
	authority, addr := secureWith(t, xds.Limits{MaxStreams: 1})
	first := open(t, addr, creds(t, authority, nodeN1), "")
	first.initial()
	second := open(t, addr, creds(t, authority, nodeN1), "")
	if _, err := second.next(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second stream over MaxStreams=1: err = %v, want ResourceExhausted", err)
	}
}

// A node that connects before the first snapshot is answered once it
// arrives, every type included, even empty ones (no ServiceEntry here):
// the node learns each type's state and syncs.
func TestFirstSnapshotAfterConnect(t *testing.T) {
	srv := ambient.New(ambient.Config{})
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, plainADS{srv: srv, node: "n1"})
	c := open(t, listen(t, g), nil, "")
	c.noMore(t)
	if err := srv.Update(world()); err != nil {
		t.Fatal(err)
	}
	got := c.initial()
	if len(got[mcp.TypeServiceEntry].GetResources()) != 0 || len(got[mcp.TypeWorkloadEntry].GetResources()) != 3 {
		t.Fatalf("first responses: %d services, %d workloads", len(got[mcp.TypeServiceEntry].GetResources()), len(got[mcp.TypeWorkloadEntry].GetResources()))
	}
}

// A node certificate's delta stream is the node server's: asking it for
// sidecar (Envoy) types is refused, never answered from the sidecar cache.
func TestNodeStreamRefusesEnvoyTypes(t *testing.T) {
	authority, addr := secure(t)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds(t, authority, nodeN1)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener",
		Node: &core.Node{Id: "sidecar~10.0.0.1~a.frontend~frontend.svc.cluster.local"}})
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("listeners on a node stream: err = %v, want InvalidArgument", err)
	}
}
