package ads_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
	"github.com/wardmesh/ward/node/ads"
	"github.com/wardmesh/ward/xds/ambient"
)

// plainADS serves srv's node streams as node n1 without authentication
// (the secure binding is xds/ambient's to test).
type plainADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	srv *ambient.Server
}

func (p plainADS) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return p.srv.ServeNode("n1", s)
}

func serveOn(t *testing.T, srv *ambient.Server, addr string) *grpc.Server {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, plainADS{srv: srv})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return g
}

func snapshot(extra ...*mesh.Config) *mesh.Snapshot {
	cs := []*mesh.Config{
		{Meta: mesh.Meta{Kind: mesh.KindWorkloadEntry, Namespace: "shop", Name: "db-1"},
			Spec: &networking.WorkloadEntry{Address: "10.0.0.2", ServiceAccount: "db",
				Labels: map[string]string{"app": "db", "istio.io/dataplane-mode": "ambient", "ward.io/node": "n1"}}},
		{Meta: mesh.Meta{Kind: mesh.KindPeerAuthentication, Namespace: "istio-system", Name: "default"},
			Spec: &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: security.PeerAuthentication_MutualTLS_STRICT}}},
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, append(cs, extra...))
}

func policy(name string, methods ...string) *mesh.Config {
	rule := &security.Rule{From: []*security.Rule_From{{Source: &security.Source{Namespaces: []string{"evil"}}}}}
	if len(methods) > 0 {
		rule.To = []*security.Rule_To{{Operation: &security.Operation{Methods: methods}}}
	}
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindAuthorizationPolicy, Namespace: "shop", Name: name},
		Spec: &security.AuthorizationPolicy{Action: security.AuthorizationPolicy_DENY, Rules: []*security.Rule{rule}}}
}

// applied collects the snapshots the client applies.
type applied struct {
	ch chan *mesh.Snapshot
}

func (a applied) apply(_ context.Context, s *mesh.Snapshot) error {
	a.ch <- s
	return nil
}

func (a applied) next(t *testing.T) *mesh.Snapshot {
	t.Helper()
	select {
	case s := <-a.ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot applied within 10s")
		return nil
	}
}

// answers records the server's view of each ACK/NACK.
type answers chan string

func (a answers) hook(_, url string, nack bool) {
	if nack {
		a <- "NACK " + url
	} else {
		a <- "ACK " + url
	}
}

func (a answers) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-a:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("server never recorded %q", want)
		}
	}
}

func start(t *testing.T, addr string, a applied, after func(time.Duration) <-chan time.Time) *ads.Client {
	t.Helper()
	c, err := ads.New(ads.Config{Addr: addr, Creds: insecure.NewCredentials(), Node: "n1", Apply: a.apply, After: after})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// The first snapshot is applied once every type arrived (before that the
// node proxy has none: fail closed); a resource that does not validate is
// NACKed with its name and the last good state stays; a fixed one applies.
func TestClientSyncNACKAndRecovery(t *testing.T) {
	acks := make(answers, 256)
	srv := ambient.New(ambient.Config{OnAnswer: acks.hook})
	if err := srv.Update(snapshot(policy("deny-evil"))); err != nil {
		t.Fatal(err)
	}
	addr := listenAddr(t, srv)
	a := applied{ch: make(chan *mesh.Snapshot, 16)}
	c := start(t, addr, a, nil)
	first := a.next(t)
	select {
	case <-c.Synced():
	default:
		t.Fatal("Synced not closed after the first snapshot")
	}
	if len(first.Workloads()) != 1 || len(first.All(mesh.KindAuthorizationPolicy)) != 1 || first.Mesh().TrustDomain != "cluster.local" {
		t.Fatalf("first snapshot: %d workloads, %d policies, td %q", len(first.Workloads()), len(first.All(mesh.KindAuthorizationPolicy)), first.Mesh().TrustDomain)
	}
	acks.waitFor(t, "ACK "+mcp.TypeAuthorizationPolicy)

	// An invalid policy (an empty method) is rejected, naming the
	// resource and field; nothing is applied.
	if err := srv.Update(snapshot(policy("deny-evil"), policy("bad", ""))); err != nil {
		t.Fatal(err)
	}
	acks.waitFor(t, "NACK "+mcp.TypeAuthorizationPolicy)
	st := srv.Connections()[0].Types["authz"]
	if st.Nacks != 1 || !strings.Contains(st.LastNack, "shop/bad") || !strings.Contains(st.LastNack, "methods[0]") {
		t.Fatalf("server status after NACK: %+v", st)
	}
	if cs := c.Status()[mcp.TypeAuthorizationPolicy]; cs.Nacks != 1 || cs.Resources != 1 {
		t.Fatalf("client status after NACK: %+v (the last good state has 1 policy)", cs)
	}
	select {
	case s := <-a.ch:
		t.Fatalf("a snapshot was applied from a rejected response: %d policies", len(s.All(mesh.KindAuthorizationPolicy)))
	default:
	}

	// Fixed: applied, with both policies.
	if err := srv.Update(snapshot(policy("deny-evil"), policy("bad", "GET"))); err != nil {
		t.Fatal(err)
	}
	if got := len(a.next(t).All(mesh.KindAuthorizationPolicy)); got != 2 {
		t.Fatalf("after the fix: %d policies, want 2", got)
	}
}

// An Apply error (the config does not compile on the node) is a NACK too.
func TestClientApplyErrorNACKs(t *testing.T) {
	acks := make(answers, 256)
	srv := ambient.New(ambient.Config{OnAnswer: acks.hook})
	if err := srv.Update(snapshot()); err != nil {
		t.Fatal(err)
	}
	addr := listenAddr(t, srv)
	var once sync.Once
	fail := func(context.Context, *mesh.Snapshot) error {
		err := errors.New("policy does not compile")
		once.Do(func() { err = nil })
		return err
	}
	c, err := ads.New(ads.Config{Addr: addr, Creds: insecure.NewCredentials(), Node: "n1", Apply: fail})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	acks.waitFor(t, "ACK "+mcp.TypeAuthorizationPolicy)
	if err := srv.Update(snapshot(policy("x"))); err != nil {
		t.Fatal(err)
	}
	acks.waitFor(t, "NACK "+mcp.TypeAuthorizationPolicy)
	if got := srv.Connections()[0].Types["authz"].LastNack; got != "policy does not compile" {
		t.Fatalf("NACK detail = %q", got)
	}
}

// A broken stream is retried; the new stream resumes from the versions
// the client holds, so the re-sync sends no resource again.
func TestClientReconnectResumes(t *testing.T) {
	sent := make(chan int, 64)
	srv := ambient.New(ambient.Config{OnSend: func(_ string, r *discovery.DeltaDiscoveryResponse) { sent <- len(r.GetResources()) }})
	if err := srv.Update(snapshot(policy("deny-evil"))); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	g1 := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g1, plainADS{srv: srv})
	go func() { _ = g1.Serve(lis) }()
	retries := make(chan time.Duration, 64)
	now := func(d time.Duration) <-chan time.Time {
		select {
		case retries <- d:
		default: // the test needs only the first attempts
		}
		ch := make(chan time.Time, 1)
		ch <- time.Now()
		return ch
	}
	a := applied{ch: make(chan *mesh.Snapshot, 16)}
	start(t, addr, a, now)
	a.next(t)
	for range mcp.NodeTypes {
		<-sent // the initial responses
	}
	g1.Stop() // the control plane goes away
	select {
	case d := <-retries:
		if d <= 0 || d > ads.DefaultMaxBackoff {
			t.Fatalf("backoff %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnection attempt")
	}
	serveOn(t, srv, addr) // and comes back on the same address
	total := 0
	for range mcp.NodeTypes {
		select {
		case n := <-sent:
			total += n
		case <-time.After(10 * time.Second):
			t.Fatal("no re-sync after reconnecting")
		}
	}
	if total != 0 {
		t.Fatalf("re-sync sent %d resources, want 0 (the client holds them all)", total)
	}
}

func listenAddr(t *testing.T, srv *ambient.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, plainADS{srv: srv})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}
