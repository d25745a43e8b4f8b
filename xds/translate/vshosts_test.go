package translate_test

import (
	"testing"

	"github.com/wardmesh/ward/mesh"
)

// VirtualService hosts outside the registry get sidecar virtual hosts the
// way Istio builds them: on route config 80 for any mesh VirtualService,
// and on a service's port for the other hosts of a VirtualService that
// routes that service.
func TestSimulateVirtualServiceHosts(t *testing.T) {
	res := generate(t, load(t, "vshosts"), goldenCases[5].proxy)
	const reviews, ratings = "reviews.bookinfo.svc.cluster.local", "ratings.bookinfo.svc.cluster.local"
	cases := []struct {
		name, route string
		c           call
		want        string
	}{
		{"alias without a service, port 80", "80", call{authority: "reviews.example.com", path: "/v2/x"}, "outbound|9080||" + reviews},
		{"alias with port in authority", "80", call{authority: "reviews.example.com:80", path: "/"}, "outbound|9080||" + reviews},
		{"alias of a service rides on its port", "9080", call{authority: "ratings.example.com:9080", path: "/"}, "outbound|9080||" + ratings},
		{"the service itself still routes", "9080", call{authority: ratings, path: "/"}, "outbound|9080||" + ratings},
		{"service host on port 80 (Istio's port-80 rule)", "80", call{authority: ratings, path: "/"}, "outbound|9080||" + ratings},
		{"alias without a service is not on other ports", "9080", call{authority: "reviews.example.com", path: "/"}, "PassthroughCluster"},
		{"not exported to the namespace", "80", call{authority: "hidden.example.com", path: "/"}, "PassthroughCluster"},
		{"bound to a gateway only", "80", call{authority: "edge.example.com", path: "/"}, "PassthroughCluster"},
		{"other namespace's alias allowed by no Sidecar", "80", call{authority: "local.example.com", path: "/"}, "outbound|80||local.scoped.svc.cluster.local"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := routeFor(routeConfig(t, res, tc.route), tc.c)
			if got := destination(r); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	rc := routeConfig(t, res, "80")
	vh, r := routeFor(rc, call{authority: "reviews.example.com", path: "/v2/x"})
	if vh.GetName() != "reviews.example.com:80" || r.GetRoute().GetTimeout().AsDuration().String() != "3s" {
		t.Errorf("virtual host %q route %v: want reviews.example.com:80 with the VirtualService's 3s timeout", vh.GetName(), r.GetRoute())
	}
	seen := map[string]string{}
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if prev, dup := seen[d]; dup {
				t.Errorf("domain %q in virtual hosts %s and %s (Envoy rejects the route config)", d, prev, vh.GetName())
			}
			seen[d] = vh.GetName()
		}
	}
}

// A Sidecar limited to its own namespace sees only its namespace's
// VirtualService aliases.
func TestVirtualServiceHostsSidecarScope(t *testing.T) {
	p := mesh.Proxy{ID: "sidecar~10.0.5.9~app.scoped~scoped.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "scoped", IPs: []string{"10.0.5.9"}, Labels: mesh.Labels{"app": "app"}}
	res := generate(t, load(t, "vshosts"), p)
	rc := routeConfig(t, res, "80")
	cases := map[string]string{
		"local.example.com":   "outbound|80||local.scoped.svc.cluster.local",
		"reviews.example.com": "PassthroughCluster",
	}
	for host, want := range cases {
		_, r := routeFor(rc, call{authority: host, path: "/"})
		if got := destination(r); got != want {
			t.Errorf("%s: got %s, want %s", host, got, want)
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
