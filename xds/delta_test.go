package xds

import (
	"context"
	"fmt"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wardmesh/ward/mesh"
)

// A wildcard delta stream gets every cluster with a content version, then
// only what changed; a proxy reconnecting with the versions it holds
// (initial_resource_versions) is sent nothing it already has, only the
// empty first answer a wildcard subscription needs.
func TestDeltaWildcardVersionsAndReconnect(t *testing.T) {
	s := NewServer(Config{})
	a := func(port uint32) *mesh.Config { return serviceEntry("a.test.svc.cluster.local", port, "10.0.0.1") }
	b := serviceEntry("b.test.svc.cluster.local", 80, "10.0.0.2")
	s.UpdateNow(snapshotOf(a(80), b))
	cc := startServer(t, s)
	node := &core.Node{Id: "sidecar~10.1.0.1~app.test~test.svc.cluster.local"}
	open := func(initial map[string]string) discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, InitialResourceVersions: initial}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(nil)
	r := recvDelta(t, st)
	held := map[string]string{}
	for _, res := range r.GetResources() {
		if res.GetVersion() == "" || res.GetResource().GetTypeUrl() != resource.ClusterType {
			t.Fatalf("resource %s: version %q type %q", res.GetName(), res.GetVersion(), res.GetResource().GetTypeUrl())
		}
		held[res.GetName()] = res.GetVersion()
	}
	const ca, cb = "outbound|80||a.test.svc.cluster.local", "outbound|80||b.test.svc.cluster.local"
	if held[ca] == "" || held[cb] == "" {
		t.Fatalf("first wildcard response %v lacks %s or %s", respNames(r), ca, cb)
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	// a moves to port 81: its old cluster is removed, the new one added, b untouched.
	s.UpdateNow(snapshotOf(a(81), b))
	r = recvDelta(t, st)
	const ca81 = "outbound|81||a.test.svc.cluster.local"
	if fmt.Sprint(respNames(r)) != fmt.Sprint([]string{ca81}) || fmt.Sprint(r.GetRemovedResources()) != fmt.Sprint([]string{ca}) {
		t.Fatalf("update: resources %v removed %v, want [%s] removed [%s]", respNames(r), r.GetRemovedResources(), ca81, ca)
	}
	delete(held, ca)
	held[ca81] = r.GetResources()[0].GetVersion()

	// Reconnect holding everything: the first answer is empty.
	st2 := open(held)
	r = recvDelta(t, st2)
	if len(r.GetResources()) != 0 || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("reconnect with current versions: resources %v removed %v, want none", respNames(r), r.GetRemovedResources())
	}
}
