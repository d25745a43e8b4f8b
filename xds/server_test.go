package xds

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

func serviceEntry(host string, port uint32, addr string) *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "test", Name: host}, Spec: &networking.ServiceEntry{
		Hosts: []string{host}, Resolution: networking.ServiceEntry_STATIC, Location: networking.ServiceEntry_MESH_INTERNAL,
		Ports:     []*networking.ServicePort{{Number: port, Name: "grpc", Protocol: "GRPC"}},
		Endpoints: []*networking.WorkloadEntry{{Address: addr}},
	}}
}

func snapshotOf(cfgs ...*mesh.Config) *mesh.Snapshot {
	return mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
}

// startServer runs a Ward xDS server on loopback and returns a client conn.
func startServer(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(s.ServerOptions()...)
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func recvDelta(t *testing.T, st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) *discovery.DeltaDiscoveryResponse {
	t.Helper()
	type res struct {
		r   *discovery.DeltaDiscoveryResponse
		err error
	}
	ch := make(chan res, 1)
	go func() { r, err := st.Recv(); ch <- res{r, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.r
	case <-time.After(10 * time.Second):
		t.Fatal("no delta response within 10s")
	}
	return nil
}

func respNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, x := range r.GetResources() {
		out = append(out, x.GetName())
	}
	sort.Strings(out)
	return out
}

func TestDeltaSubscribeUpdateRemove(t *testing.T) {
	s := NewServer(Config{})
	a := func(addr string) *mesh.Config { return serviceEntry("a.test.svc.cluster.local", 80, addr) }
	b := serviceEntry("b.test.svc.cluster.local", 80, "10.0.0.2")
	s.UpdateNow(snapshotOf(a("10.0.0.1"), b))
	cc := startServer(t, s)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "sidecar~10.1.0.1~app.test~test.svc.cluster.local"}
	const ca, cb = "outbound|80||a.test.svc.cluster.local", "outbound|80||b.test.svc.cluster.local"
	send := func(req *discovery.DeltaDiscoveryRequest) {
		t.Helper()
		req.TypeUrl = resource.EndpointType
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	// Subscribe to a only.
	send(&discovery.DeltaDiscoveryRequest{Node: node, ResourceNamesSubscribe: []string{ca}})
	r := recvDelta(t, st)
	if got := respNames(r); fmt.Sprint(got) != fmt.Sprint([]string{ca}) {
		t.Fatalf("first response %v, want [%s]", got, ca)
	}
	send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.GetNonce()})

	// An unrelated change (b's endpoint) sends nothing; a's change sends a.
	s.UpdateNow(snapshotOf(a("10.0.0.9"), serviceEntry("b.test.svc.cluster.local", 80, "10.0.0.3")))
	r = recvDelta(t, st)
	if got := respNames(r); fmt.Sprint(got) != fmt.Sprint([]string{ca}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("incremental update %v removed %v, want only %s", got, r.GetRemovedResources(), ca)
	}
	send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.GetNonce()})

	// Subscribe b, unsubscribe a: only b arrives.
	send(&discovery.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{cb}, ResourceNamesUnsubscribe: []string{ca}})
	r = recvDelta(t, st)
	if got := respNames(r); fmt.Sprint(got) != fmt.Sprint([]string{cb}) {
		t.Fatalf("after subscribe b: %v", got)
	}
	send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.GetNonce()})

	// Removing b from the config removes the resource.
	s.UpdateNow(snapshotOf(a("10.0.0.9")))
	r = recvDelta(t, st)
	if len(r.GetResources()) != 0 || fmt.Sprint(r.GetRemovedResources()) != fmt.Sprint([]string{cb}) {
		t.Fatalf("removal: resources %v removed %v, want removed [%s]", respNames(r), r.GetRemovedResources(), cb)
	}
	send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.GetNonce()})
	waitFor(t, "delta ACK recorded", func() bool {
		row := s.SyncStatus()
		return len(row) == 1 && row[0].Types["eds"].Acked != "" && row[0].Types["eds"].Acked == row[0].Types["eds"].Sent
	})
}

// waitFor polls cond (the server records ACKs asynchronously) for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 10s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval of a bounded wait
	}
}

func TestRecomputeOnlyAffectedProxies(t *testing.T) {
	var mu sync.Mutex
	gens := map[string]int{}
	s := NewServer(Config{Hooks: translate.Hooks{HTTPFilters: func(_ *mesh.Snapshot, p *mesh.Proxy, dir translate.Direction, port uint32) []*hcmv3.HttpFilter {
		if dir == translate.Outbound && port == 81 { // one call per generation of the outbound side
			mu.Lock()
			gens[p.Namespace]++
			mu.Unlock()
		}
		return nil
	}}})
	local := func(addr string, port uint32) *mesh.Config {
		c := serviceEntry("local.test.svc.cluster.local", port, addr)
		c.Spec.(*networking.ServiceEntry).ExportTo = []string{"."}
		c.Spec.(*networking.ServiceEntry).Ports[0].Protocol = "HTTP"
		return c
	}
	shared := serviceEntry("shared.test.svc.cluster.local", 81, "10.0.0.5")
	s.UpdateNow(snapshotOf(local("10.0.0.1", 80), shared))
	s.attach(1, &core.Node{Id: "sidecar~10.1.0.1~a.test~test.svc.cluster.local"})
	s.attach(2, &core.Node{Id: "sidecar~10.1.0.2~b.test~test.svc.cluster.local"}) // same scope: shares a's output
	s.attach(3, &core.Node{Id: "sidecar~10.2.0.1~c.other~other.svc.cluster.local"})
	count := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return map[string]int{"test": gens["test"], "other": gens["other"]}
	}
	if g := count(); g["test"] != 1 || g["other"] != 1 {
		t.Fatalf("initial generations %v, want one per distinct scope", g)
	}
	// A config change to a service only namespace test sees regenerates
	// test's outbound config once and leaves other's alone.
	s.UpdateNow(snapshotOf(local("10.0.0.1", 82), shared))
	if g := count(); g["test"] != 2 || g["other"] != 1 {
		t.Fatalf("after a test-only change: generations %v, want test 2, other 1", g)
	}
	// An endpoint-only change regenerates no cluster/listener/route config,
	// only endpoint sets: new EDS version, same CDS version.
	before := s.currentOf("sidecar~10.1.0.1~a.test~test.svc.cluster.local").versions
	s.UpdateNow(snapshotOf(local("10.0.0.7", 82), shared))
	after := s.currentOf("sidecar~10.1.0.1~a.test~test.svc.cluster.local").versions
	if g := count(); g["test"] != 2 || g["other"] != 1 {
		t.Fatalf("an endpoint move regenerated outbound config: %v", g)
	}
	if after.Endpoints == before.Endpoints || after.Clusters != before.Clusters || after.Listeners != before.Listeners {
		t.Fatalf("endpoint move: versions %+v → %+v, want only endpoints to change", before, after)
	}
}

func TestSotWEndpointsAreIncremental(t *testing.T) {
	s := NewServer(Config{})
	a := func(addr string) *mesh.Config { return serviceEntry("a.test.svc.cluster.local", 80, addr) }
	b := serviceEntry("b.test.svc.cluster.local", 80, "10.0.0.2")
	s.UpdateNow(snapshotOf(a("10.0.0.1"), b))
	cc := startServer(t, s)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "sidecar~10.1.0.1~app.test~test.svc.cluster.local"}, TypeUrl: resource.EndpointType}); err != nil {
		t.Fatal(err)
	}
	r := recvSotW(t, st)
	if len(r.GetResources()) != 2 {
		t.Fatalf("first EDS response has %d resources, want both services", len(r.GetResources()))
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	s.UpdateNow(snapshotOf(a("10.0.0.9"), b))
	r2 := recvSotW(t, st)
	if r2.GetVersionInfo() == r.GetVersionInfo() || len(r2.GetResources()) != 1 {
		t.Fatalf("after changing a: version %s→%s with %d resources, want a new version carrying only a's endpoints", r.GetVersionInfo(), r2.GetVersionInfo(), len(r2.GetResources()))
	}
	cla := &endpoint.ClusterLoadAssignment{}
	if err := r2.GetResources()[0].UnmarshalTo(cla); err != nil || cla.GetClusterName() != "outbound|80||a.test.svc.cluster.local" {
		t.Fatalf("incremental response carries %v (%v)", cla.GetClusterName(), err)
	}
}
