package translate_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

// VirtualService hosts outside the registry get sidecar virtual hosts the
// way Istio builds them: on route config 80 for any mesh VirtualService,
// and on a service's port for the other hosts of a VirtualService that
// routes that service.
func TestSimulateVirtualServiceHosts(t *testing.T) {
	res := generate(t, load(t, "vshosts"), goldenCases[5].proxy)
	noDuplicateDomains(t, res)
	sim := envoySim(t, res)
	const reviews, ratings = "reviews.bookinfo.svc.cluster.local", "ratings.bookinfo.svc.cluster.local"
	cases := []struct {
		name string
		port uint32 // the outbound call's port; route config "<port>"
		host string
		path string
		want string
	}{
		{"alias without a service, port 80", 80, "reviews.example.com", "/v2/x", "outbound|9080||" + reviews},
		{"alias with port in authority", 80, "reviews.example.com:80", "/", "outbound|9080||" + reviews},
		{"alias of a service rides on its port", 9080, "ratings.example.com:9080", "/", "outbound|9080||" + ratings},
		{"the service itself still routes", 9080, ratings, "/", "outbound|9080||" + ratings},
		{"service host on port 80 (Istio's port-80 rule)", 80, ratings, "/", "outbound|9080||" + ratings},
		{"alias without a service is not on other ports", 9080, "reviews.example.com", "/", "PassthroughCluster"},
		{"not exported to the namespace", 80, "hidden.example.com", "/", "PassthroughCluster"},
		{"bound to a gateway only", 80, "edge.example.com", "/", "PassthroughCluster"},
		{"other namespace's alias allowed by no Sidecar", 80, "local.example.com", "/", "outbound|80||local.scoped.svc.cluster.local"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sim.Run(simOutbound(tc.port, tc.host, tc.path, nil))
			if want := strconv.FormatUint(uint64(tc.port), 10); r.RouteConfig != want {
				t.Errorf("route config %q, want %q", r.RouteConfig, want)
			}
			if got := simDestination(r); got != tc.want {
				t.Errorf("got %s, want %s\n%s", got, tc.want, strings.Join(r.Trace, "\n"))
			}
		})
	}
	r := sim.Run(simOutbound(80, "reviews.example.com", "/v2/x", nil))
	if r.RouteConfig != "80" || r.VirtualHost != "reviews.example.com:80" || r.RouteEntry.GetRoute().GetTimeout().AsDuration().String() != "3s" {
		t.Errorf("route config %q virtual host %q route %v: want 80, reviews.example.com:80 with the VirtualService's 3s timeout", r.RouteConfig, r.VirtualHost, r.RouteEntry.GetRoute())
	}
}

// A Sidecar limited to its own namespace sees only its namespace's
// VirtualService aliases.
func TestVirtualServiceHostsSidecarScope(t *testing.T) {
	p := mesh.Proxy{ID: "sidecar~10.0.5.9~app.scoped~scoped.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "scoped", IPs: []string{"10.0.5.9"}, Labels: mesh.Labels{"app": "app"}}
	sim := envoySim(t, generate(t, load(t, "vshosts"), p))
	cases := map[string]string{
		"local.example.com":   "outbound|80||local.scoped.svc.cluster.local",
		"reviews.example.com": "PassthroughCluster",
	}
	for host, want := range cases {
		r := sim.Run(simOutbound(80, host, "/", nil))
		if got := simDestination(r); got != want || r.RouteConfig != "80" {
			t.Errorf("%s: got %s on route config %q, want %s on 80", host, got, r.RouteConfig, want)
		}
	}
}

// Proxyless gRPC gets no listeners for hosts outside the registry (Istio's
// gRPC generator builds them for registry services only).
func TestVirtualServiceHostsGRPC(t *testing.T) {
	p := goldenCases[5].proxy
	p.Type = mesh.ProxyGRPC
	res := generate(t, load(t, "vshosts"), p)
	for _, l := range res.Listeners {
		if l.GetName() == "reviews.example.com:80" {
			t.Errorf("grpc got a listener for a host outside the registry")
		}
	}
}
