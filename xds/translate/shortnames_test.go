package translate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

func shortNamesProxy(typ mesh.ProxyType, ns string) mesh.Proxy {
	return mesh.Proxy{ID: string(typ) + "~10.0.7.1~app-1." + ns + "~" + ns + ".svc.cluster.local", Type: typ, Namespace: ns, IPs: []string{"10.0.7.1"}, Labels: mesh.Labels{"app": "app"}}
}

// noDuplicateDomains fails when a domain is in two virtual hosts of one
// route config (Envoy rejects the route config).
func noDuplicateDomains(t *testing.T, res *translate.Resources) {
	t.Helper()
	for _, rc := range res.Routes {
		seen := map[string]string{}
		for _, vh := range rc.GetVirtualHosts() {
			for _, d := range vh.GetDomains() {
				if prev, dup := seen[d]; dup {
					t.Errorf("route config %s: domain %q in virtual hosts %s and %s", rc.GetName(), d, prev, vh.GetName())
				}
				seen[d] = vh.GetName()
			}
		}
	}
}

// An Envoy sidecar routes the Host-header spellings Istio's sidecars
// accept: svc, svc.ns, svc.ns.svc and the FQDN, with and without port,
// and the service address; the bare name only within the namespace. A
// ServiceEntry whose real host is a short form of another service keeps
// that name.
func TestSimulateSidecarShortNames(t *testing.T) {
	const (
		reviews = "outbound|9080||reviews.bookinfo.svc.cluster.local"
		ratings = "outbound|9080||ratings.bookinfo.svc.cluster.local"
		legacy  = "outbound|9080||ratings.bookinfo"
		details = "outbound|9080||details.other.svc.cluster.local"
		nowhere = "PassthroughCluster"
	)
	cases := []struct {
		ns, authority, want string
	}{
		{"bookinfo", "reviews", reviews},
		{"bookinfo", "reviews:9080", reviews},
		{"bookinfo", "reviews.bookinfo", reviews},
		{"bookinfo", "reviews.bookinfo:9080", reviews},
		{"bookinfo", "reviews.bookinfo.svc", reviews},
		{"bookinfo", "reviews.bookinfo.svc:9080", reviews},
		{"bookinfo", "reviews.bookinfo.svc.cluster.local:9080", reviews},
		{"bookinfo", "10.96.0.10", reviews},
		{"bookinfo", "10.96.0.10:9080", reviews},
		{"bookinfo", "ratings:9080", ratings},
		{"bookinfo", "ratings.bookinfo.svc:9080", ratings},
		{"bookinfo", "ratings.bookinfo:9080", legacy}, // a real host wins over a short form
		{"bookinfo", "details.other:9080", details},
		{"bookinfo", "details.other.svc", details},
		{"bookinfo", "details:9080", nowhere}, // bare names stay in the client's namespace
		{"other", "details", details},
		{"other", "details:9080", details},
		{"other", "reviews:9080", nowhere},
		{"other", "reviews.bookinfo:9080", reviews},
	}
	snap := load(t, "shortnames")
	byNS := map[string]*simulate.Simulator{}
	for _, ns := range []string{"bookinfo", "other"} {
		res := generate(t, snap, shortNamesProxy(mesh.ProxySidecar, ns))
		noDuplicateDomains(t, res)
		byNS[ns] = envoySim(t, res)
	}
	for _, tc := range cases {
		t.Run(tc.ns+"/"+tc.authority, func(t *testing.T) {
			r := byNS[tc.ns].Run(simOutbound(9080, tc.authority, "/", nil))
			if r.Listener != "0.0.0.0_9080" || r.RouteConfig != "9080" {
				t.Errorf("listener %s route config %s, want 0.0.0.0_9080 and 9080", r.Listener, r.RouteConfig)
			}
			if got := simDestination(r); got != tc.want {
				t.Errorf("got %s, want %s\n%s", got, tc.want, strings.Join(r.Trace, "\n"))
			}
		})
	}
}

// The Bookinfo sidecar golden's VirtualService applies under the short
// names as well: the everyday http://reviews:9080 takes the same routes.
func TestSimulateSidecarShortNamesVirtualService(t *testing.T) {
	res := generate(t, load(t, "sidecar"), goldenCases[0].proxy)
	noDuplicateDomains(t, res)
	sim := envoySim(t, res)
	const reviews = "reviews.bookinfo.svc.cluster.local"
	for _, host := range []string{"reviews", "reviews:9080", "reviews.bookinfo:9080", "reviews.bookinfo.svc"} {
		r := sim.Run(simOutbound(9080, host, "/old", nil))
		if r.RouteConfig != "9080" || r.VirtualHost != reviews+":9080" || simDestination(r) != "redirect /new" {
			t.Errorf("%s: route config %s, virtual host %s, %s; want 9080, %s:9080 and its redirect", host, r.RouteConfig, r.VirtualHost, simDestination(r), reviews)
		}
	}
}

// Proxyless gRPC resolves xds:///svc:P (from the namespace), svc.ns:P
// and svc.ns.svc:P like the FQDN: an api_listener per short name sharing
// the service port's route config, whose virtual host matches the name
// (grpc-go picks the virtual host by the target's authority).
func TestSimulateGRPCShortNames(t *testing.T) {
	const reviewsRC = "reviews.bookinfo.svc.cluster.local:9080"
	cases := []struct {
		ns, target, wantRC string // wantRC "" = no listener
	}{
		{"bookinfo", "reviews:9080", reviewsRC},
		{"bookinfo", "reviews.bookinfo:9080", reviewsRC},
		{"bookinfo", "reviews.bookinfo.svc:9080", reviewsRC},
		{"bookinfo", "reviews.bookinfo.svc.cluster.local:9080", reviewsRC},
		{"bookinfo", "ratings.bookinfo:9080", "ratings.bookinfo:9080"}, // the legacy ServiceEntry's own name
		{"bookinfo", "ratings:9080", "ratings.bookinfo.svc.cluster.local:9080"},
		{"bookinfo", "details.other:7070", "details.other.svc.cluster.local:7070"},
		{"bookinfo", "details:7070", ""},
		{"bookinfo", "reviews:7070", ""},
		{"other", "details:7070", "details.other.svc.cluster.local:7070"},
		{"other", "reviews:9080", ""},
		{"other", "reviews.bookinfo:9080", reviewsRC},
	}
	snap := load(t, "shortnames")
	res := map[string]*translate.Resources{}
	for _, ns := range []string{"bookinfo", "other"} {
		res[ns] = generate(t, snap, shortNamesProxy(mesh.ProxyGRPC, ns))
		seen := map[string]bool{}
		for _, l := range res[ns].Listeners {
			if seen[l.GetName()] {
				t.Errorf("%s: listener %s twice", ns, l.GetName())
			}
			seen[l.GetName()] = true
		}
	}
	for _, tc := range cases {
		t.Run(tc.ns+"/"+tc.target, func(t *testing.T) {
			r := envoySim(t, res[tc.ns]).Run(simulate.Request{Capture: simulate.API, Target: tc.target, Protocol: simulate.GRPC,
				Path: "/", Host: tc.target})
			if tc.wantRC == "" {
				if r.Verdict != simulate.NoListener {
					t.Errorf("%s has a listener: %s", tc.target, r)
				}
				return
			}
			if r.Listener != tc.target || r.RouteConfig != tc.wantRC {
				t.Fatalf("listener %q routes to %q, want %s routing to %q", r.Listener, r.RouteConfig, tc.target, tc.wantRC)
			}
			if r.VirtualHost == "" || r.RouteEntry == nil {
				t.Fatalf("route config %s has no virtual host and route for authority %s: %s\n%s", tc.wantRC, tc.target, r, strings.Join(r.Trace, "\n"))
			}
		})
	}
}

// No generated route config, for any golden proxy, has a domain in two
// virtual hosts (Envoy and grpc reject it); short names must never add one.
func TestGoldenNoDuplicateDomains(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.dir+"/"+tc.name, func(t *testing.T) {
			noDuplicateDomains(t, generate(t, load(t, tc.dir), tc.proxy))
		})
	}
}
