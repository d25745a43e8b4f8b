package translate_test

import (
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/mesh"
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
	byNS := map[string]*route.RouteConfiguration{}
	for _, ns := range []string{"bookinfo", "other"} {
		res := generate(t, snap, shortNamesProxy(mesh.ProxySidecar, ns))
		noDuplicateDomains(t, res)
		l := listenerNamed(t, res, "0.0.0.0_9080")
		byNS[ns] = routeConfig(t, res, hcmOf(t, chainFor(l, call{port: 9080})).GetRds().GetRouteConfigName())
	}
	for _, tc := range cases {
		t.Run(tc.ns+"/"+tc.authority, func(t *testing.T) {
			_, r := routeFor(byNS[tc.ns], call{authority: tc.authority, path: "/"})
			if got := destination(r); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// The Bookinfo sidecar golden's VirtualService applies under the short
// names as well: the everyday http://reviews:9080 takes the same routes.
func TestSimulateSidecarShortNamesVirtualService(t *testing.T) {
	res := generate(t, load(t, "sidecar"), goldenCases[0].proxy)
	noDuplicateDomains(t, res)
	rc := routeConfig(t, res, "9080")
	const reviews = "reviews.bookinfo.svc.cluster.local"
	for _, host := range []string{"reviews", "reviews:9080", "reviews.bookinfo:9080", "reviews.bookinfo.svc"} {
		vh, r := routeFor(rc, call{authority: host, path: "/old"})
		if vh.GetName() != reviews+":9080" || destination(r) != "redirect /new" {
			t.Errorf("%s: virtual host %s, %s; want %s:9080 and its redirect", host, vh.GetName(), destination(r), reviews)
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
			var rcName string
			for _, l := range res[tc.ns].Listeners {
				if l.GetName() == tc.target && l.GetApiListener() != nil {
					rcName = apiHCM(t, l).GetRds().GetRouteConfigName()
				}
			}
			if rcName != tc.wantRC {
				t.Fatalf("listener %s routes to %q, want %q", tc.target, rcName, tc.wantRC)
			}
			if rcName == "" {
				return
			}
			vh, r := routeFor(routeConfig(t, res[tc.ns], rcName), call{authority: tc.target, path: "/"})
			if vh == nil || r == nil {
				t.Fatalf("route config %s has no virtual host for authority %s", rcName, tc.target)
			}
		})
	}
}

// apiHCM is an api_listener's HCM.
func apiHCM(t *testing.T, l *listener.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	h := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(h); err != nil {
		t.Fatalf("listener %s: %v", l.GetName(), err)
	}
	return h
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
