package translate_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// localityProxy is a proxy in namespace shop whose node says it runs in
// locality loc ("" = none: the WorkloadEntry at its IP decides).
func localityProxy(t mesh.ProxyType, loc string) mesh.Proxy {
	p := mesh.Proxy{ID: string(t) + "~10.9.0.1~client.shop~shop.svc.cluster.local", Type: t, Namespace: "shop",
		IPs: []string{"10.9.0.1"}, Labels: mesh.Labels{"app": "client"}, Metadata: map[string]string{}}
	if loc != "" {
		p.Metadata[translate.MetaLocality] = loc
		p.Labels["version"] = "v1"
	}
	return p
}

// priorities renders a ClusterLoadAssignment as "address:priority/weight"
// per endpoint (weight = its locality's load_balancing_weight).
func priorities(cla *endpoint.ClusterLoadAssignment) string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, ep := range l.GetLbEndpoints() {
			addr := ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
			out = append(out, fmt.Sprintf("%s:%d/%d", addr, l.GetPriority(), l.GetLoadBalancingWeight().GetValue()))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func claFor(t *testing.T, r *translate.Resources, name string) *endpoint.ClusterLoadAssignment {
	t.Helper()
	for _, c := range r.Endpoints {
		if c.GetClusterName() == name {
			return c
		}
	}
	t.Fatalf("no endpoints %q", name)
	return nil
}

// Endpoints in five localities (a1 us-east/a/1, a2 us-east/a/2, b
// us-east/b with weight 3, eu eu-west/a, ap ap-south/a), seen from a proxy
// in us-east/a/1 (node locality, label version=v1) and one in eu-west/a
// (its WorkloadEntry's locality, no version label).
func TestLocalityLoadBalancing(t *testing.T) {
	snap := load(t, "locality")
	const (
		a1, a2, b, eu, ap = "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.2.0.1", "10.3.0.1"
	)
	f := func(pairs ...string) string { return strings.Join(pairs, " ") }
	cases := []struct {
		svc            string
		usEast, euWest string
	}{
		// failover from us-east to eu-west: subzone, zone, region, then the
		// "to" region, then the rest.
		{"cart", f(a1+":0/1", a2+":1/1", b+":2/3", eu+":3/1", ap+":4/1"), f(a1+":1/1", a2+":1/1", b+":1/3", eu+":0/1", ap+":1/1")},
		// failover without outlierDetection: ignored.
		{"pay", f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1"), f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1")},
		// outlierDetection alone: default failover by proximity.
		{"stock", f(a1+":0/1", a2+":1/1", b+":2/3", eu+":3/1", ap+":3/1"), f(a1+":1/1", a2+":1/1", b+":1/3", eu+":0/1", ap+":1/1")},
		// enabled: false.
		{"ship", f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1"), f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1")},
		// distribute from us-east/*: us-east/a/* shares 80, eu-west 20, the
		// rest dropped; eu-west proxies match no rule.
		{"search", f(a1+":0/40", a2+":0/40", eu+":0/20"), f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1")},
		// failoverPriority [version, region]: v1 in us-east first, v1
		// elsewhere next, v2 last; a proxy without a version label matches
		// no endpoint's version, so all share one priority.
		{"user", f(a1+":0/1", a2+":2/1", b+":0/3", eu+":1/1", ap+":2/1"), f(a1+":0/1", a2+":0/1", b+":0/3", eu+":0/1", ap+":0/1")},
	}
	for _, pt := range []mesh.ProxyType{mesh.ProxySidecar, mesh.ProxyGRPC} {
		east := generate(t, snap, localityProxy(pt, "us-east/a/1"))
		west := generate(t, snap, localityProxy(pt, ""))
		for _, tc := range cases {
			name := "outbound|8080||" + tc.svc + ".shop.svc.cluster.local"
			if got := priorities(claFor(t, east, name)); got != tc.usEast {
				t.Errorf("%s %s from us-east/a/1:\n got %s\nwant %s", pt, tc.svc, got, tc.usEast)
			}
			if got := priorities(claFor(t, west, name)); got != tc.euWest {
				t.Errorf("%s %s from eu-west/a:\n got %s\nwant %s", pt, tc.svc, got, tc.euWest)
			}
		}
		for _, c := range east.Clusters {
			weighted := c.GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil
			want := pt == mesh.ProxySidecar && strings.Contains(c.GetName(), "|search.")
			if weighted != want {
				t.Errorf("%s cluster %s: locality_weighted_lb_config %v, want %v", pt, c.GetName(), weighted, want)
			}
		}
	}
}

func TestLocalityWarnings(t *testing.T) {
	ix := translate.NewIndex(load(t, "locality"))
	var got []string
	for _, w := range ix.LocalityWarnings() {
		got = append(got, w.Error())
	}
	want := []string{"DestinationRule shop/pay (trafficPolicy): localityLbSetting.failover/failoverPriority have no effect without outlierDetection"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// Endpoint parts carry the proxy's locality only where the output depends
// on it, so proxies in different localities still share the others.
func TestEndpointPartsByLocality(t *testing.T) {
	ix := translate.NewIndex(load(t, "locality"))
	keys := func(loc string) map[string]string {
		p := localityProxy(mesh.ProxySidecar, loc)
		p.Labels = mesh.Labels{"app": "client", "version": "v1"}
		out := map[string]string{}
		for _, part := range ix.EndpointParts(ix.Scope(&p)) {
			out[strings.Split(part.Service.Hostname, ".")[0]] = part.Key
		}
		return out
	}
	east, east2, west := keys("us-east/a/1"), keys("us-east/a/1"), keys("eu-west/a")
	if diff := cmp.Diff(east, east2); diff != "" {
		t.Errorf("same locality, different keys:\n%s", diff)
	}
	for _, svc := range []string{"cart", "stock", "search", "user"} {
		if east[svc] == west[svc] {
			t.Errorf("%s: endpoint part shared across localities, but its output depends on the locality", svc)
		}
	}
	for _, svc := range []string{"pay", "ship"} {
		if east[svc] != west[svc] {
			t.Errorf("%s: endpoint part keyed by locality, but its output does not depend on it", svc)
		}
	}
	pe, pw := localityProxy(mesh.ProxySidecar, "us-east/a/1"), localityProxy(mesh.ProxySidecar, "eu-west/a")
	if ix.EndpointsFingerprint(ix.Scope(&pe)) == ix.EndpointsFingerprint(ix.Scope(&pw)) {
		t.Errorf("endpoints fingerprint ignores the proxy's locality")
	}
}

// GenerateServiceEndpoints gives exactly the endpoint sets Generate does.
func TestServiceEndpointsMatchGenerate(t *testing.T) {
	for _, dir := range []string{"locality", "sidecar", "grpc"} {
		snap := load(t, dir)
		ix := translate.NewIndex(snap)
		for _, p := range []mesh.Proxy{localityProxy(mesh.ProxySidecar, "us-east/a/1"), localityProxy(mesh.ProxyGRPC, "")} {
			sc := ix.Scope(&p)
			var parts []*endpoint.ClusterLoadAssignment
			for _, part := range ix.EndpointParts(sc) {
				parts = append(parts, translate.GenerateServiceEndpoints(ix, sc, part.Service)...)
			}
			whole := translate.GenerateEndpoints(ix, sc, translate.Hooks{}).Endpoints
			merged := translate.Merge(&translate.Resources{Endpoints: parts}, &translate.Resources{}).Endpoints
			if diff := cmp.Diff(whole, merged, protocmp.Transform()); diff != "" {
				t.Errorf("%s/%s: per-service endpoint sets differ from GenerateEndpoints:\n%s", dir, p.Type, diff)
			}
		}
	}
}
