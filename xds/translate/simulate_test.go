package translate_test

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/wardmesh/ward/xds/translate"
)

// A small simulator of Envoy's matching, after Istio's simulation tests:
// a described call is run through the generated config and the test
// asserts which filter chain, virtual host, route and cluster it hits.

type call struct {
	port      uint32 // destination port (listener filter chain match)
	sni       string
	tls       bool
	authority string
	path      string // may carry ?query
	headers   map[string]string
}

func listenerNamed(t *testing.T, r *translate.Resources, name string) *listener.Listener {
	t.Helper()
	for _, l := range r.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("no listener %q", name)
	return nil
}

func routeConfig(t *testing.T, r *translate.Resources, name string) *route.RouteConfiguration {
	t.Helper()
	for _, rc := range r.Routes {
		if rc.GetName() == name {
			return rc
		}
	}
	t.Fatalf("no route config %q", name)
	return nil
}

// chainFor picks the filter chain Envoy would: the most specific match on
// destination port, then server names, then transport protocol.
func chainFor(l *listener.Listener, c call) *listener.FilterChain {
	var best *listener.FilterChain
	bestScore := -1
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		score := 0
		if p := m.GetDestinationPort(); p != nil {
			if p.GetValue() != c.port {
				continue
			}
			score += 4
		}
		if len(m.GetServerNames()) > 0 {
			if !contains(m.GetServerNames(), c.sni) {
				continue
			}
			score += 2
		}
		if tp := m.GetTransportProtocol(); tp != "" {
			if (tp == "tls") != c.tls {
				continue
			}
			score++
		}
		if score > bestScore {
			best, bestScore = fc, score
		}
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hcmOf(t *testing.T, fc *listener.FilterChain) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, f := range fc.GetFilters() {
		h := &hcmv3.HttpConnectionManager{}
		if f.GetTypedConfig().MessageIs(h) {
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			return h
		}
	}
	t.Fatalf("filter chain %q has no HCM", fc.GetName())
	return nil
}

func tcpOf(t *testing.T, fc *listener.FilterChain) *tcpv3.TcpProxy {
	t.Helper()
	tp := &tcpv3.TcpProxy{}
	for _, f := range fc.GetFilters() {
		if f.GetTypedConfig().MessageIs(tp) {
			if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
				t.Fatal(err)
			}
			return tp
		}
	}
	t.Fatalf("filter chain %q has no tcp_proxy", fc.GetName())
	return nil
}

// routeFor finds the virtual host by authority and the first matching route.
func routeFor(rc *route.RouteConfiguration, c call) (*route.VirtualHost, *route.Route) {
	var vh *route.VirtualHost
	for _, v := range rc.GetVirtualHosts() {
		if contains(v.GetDomains(), c.authority) {
			vh = v
			break
		}
	}
	if vh == nil {
		for _, v := range rc.GetVirtualHosts() {
			if contains(v.GetDomains(), "*") {
				vh = v
			}
		}
	}
	if vh == nil {
		return nil, nil
	}
	for _, r := range vh.GetRoutes() {
		if routeMatches(r.GetMatch(), c) {
			return vh, r
		}
	}
	return vh, nil
}

func routeMatches(m *route.RouteMatch, c call) bool {
	path, rawQuery, _ := strings.Cut(c.path, "?")
	p := path
	ci := m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	norm := func(s string) string {
		if ci {
			return strings.ToLower(s)
		}
		return s
	}
	switch {
	case m.GetPrefix() != "":
		if !strings.HasPrefix(norm(p), norm(m.GetPrefix())) {
			return false
		}
	case m.GetPath() != "":
		if norm(p) != norm(m.GetPath()) {
			return false
		}
	case m.GetSafeRegex() != nil:
		if !regexp.MustCompile("^(?:" + m.GetSafeRegex().GetRegex() + ")$").MatchString(p) {
			return false
		}
	}
	h := map[string]string{":authority": c.authority, ":method": "GET", ":path": c.path}
	for k, v := range c.headers {
		h[k] = v
	}
	for _, hm := range m.GetHeaders() {
		v, ok := h[hm.GetName()]
		var match bool
		switch {
		case hm.GetPresentMatch():
			match = ok
		case hm.GetStringMatch() != nil:
			match = ok && stringMatches(hm.GetStringMatch(), v)
		}
		if match == hm.GetInvertMatch() {
			return false
		}
	}
	q, _ := url.ParseQuery(rawQuery)
	for _, qm := range m.GetQueryParameters() {
		v, ok := q[qm.GetName()]
		if qm.GetPresentMatch() && !ok {
			return false
		}
		if sm := qm.GetStringMatch(); sm != nil && (!ok || !stringMatches(sm, v[0])) {
			return false
		}
	}
	return true
}

func stringMatches(sm *matcher.StringMatcher, v string) bool {
	switch {
	case sm.GetExact() != "":
		return v == sm.GetExact()
	case sm.GetPrefix() != "":
		return strings.HasPrefix(v, sm.GetPrefix())
	case sm.GetSafeRegex() != nil:
		return regexp.MustCompile("^(?:" + sm.GetSafeRegex().GetRegex() + ")$").MatchString(v)
	}
	return false
}

// destination summarises a route's action.
func destination(r *route.Route) string {
	switch {
	case r == nil:
		return "no route"
	case r.GetRedirect() != nil:
		return "redirect " + r.GetRedirect().GetPathRedirect()
	case r.GetDirectResponse() != nil:
		return "direct " + itoa(r.GetDirectResponse().GetStatus())
	case r.GetRoute().GetWeightedClusters() != nil:
		var parts []string
		for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
			parts = append(parts, c.GetName()+"="+itoa(c.GetWeight().GetValue()))
		}
		return strings.Join(parts, ",")
	}
	return r.GetRoute().GetCluster()
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestSimulateSidecarHTTP(t *testing.T) {
	res := generate(t, load(t, "sidecar"), goldenCases[0].proxy)
	l := listenerNamed(t, res, "0.0.0.0_9080")
	rc := routeConfig(t, res, hcmOf(t, chainFor(l, call{port: 9080})).GetRds().GetRouteConfigName())
	const reviews = "reviews.bookinfo.svc.cluster.local"
	cases := []struct {
		name string
		c    call
		want string
	}{
		{"testers with every match condition", call{authority: reviews, path: "/API/x?debug=1", headers: map[string]string{"x-user-group": "testers"}}, "outbound|9080|v2|" + reviews},
		{"withoutHeaders excludes canaries", call{authority: reviews, path: "/api/x?debug=1", headers: map[string]string{"x-user-group": "testers", "x-canary": "1"}}, "outbound|9080|v1|" + reviews + "=80,outbound|9080|v2|" + reviews + "=20"},
		{"query param required", call{authority: reviews + ":9080", path: "/api/x", headers: map[string]string{"x-user-group": "testers"}}, "outbound|9080|v1|" + reviews + "=80,outbound|9080|v2|" + reviews + "=20"},
		{"exact path redirect", call{authority: reviews, path: "/old"}, "redirect /new"},
		{"regex direct response", call{authority: reviews, path: "/teapot"}, "direct 418"},
		{"delegate child route", call{authority: "ratings.bookinfo.svc.cluster.local", path: "/v1/stars/5"}, "outbound|9080||ratings.bookinfo.svc.cluster.local"},
		{"outside the delegating prefix", call{authority: "ratings.bookinfo.svc.cluster.local", path: "/v2/stars"}, "no route"},
		{"no VirtualService: default route", call{authority: "productpage.bookinfo.svc.cluster.local", path: "/"}, "outbound|9080||productpage.bookinfo.svc.cluster.local"},
		{"REGISTRY_ONLY blocks unknown hosts", call{authority: "evil.example.com", path: "/"}, "direct 502"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := routeFor(rc, tc.c)
			if got := destination(r); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	_, r := routeFor(rc, call{authority: "ratings.bookinfo.svc.cluster.local", path: "/v1/other"})
	if rw := r.GetRoute().GetRegexRewrite(); rw.GetSubstitution() != `/\1` {
		t.Errorf("delegate rewrite not applied: %v", rw)
	}
	_, r = routeFor(rc, call{authority: reviews, path: "/"})
	if r.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration().AsDuration().String() != "2s" || r.GetRoute().GetTimeout().AsDuration().String() != "2s" {
		t.Errorf("canary timeout not on both timeout and max_stream_duration: %v", r.GetRoute())
	}
	if _, ok := r.GetTypedPerFilterConfig()[translate.FilterFault]; !ok {
		t.Errorf("canary fault not scoped to its route")
	}
}

func TestSimulateSidecarListeners(t *testing.T) {
	res := generate(t, load(t, "sidecar"), goldenCases[0].proxy)
	in := listenerNamed(t, res, translate.VirtualInbound)
	if fc := chainFor(in, call{port: 9081}); fc.GetName() != "inbound|9081||" {
		t.Errorf("inbound to the workload port matched %q", fc.GetName())
	}
	if fc := chainFor(in, call{port: 1234}); fc.GetName() != "virtualInbound-catchall" {
		t.Errorf("inbound to an unknown port matched %q", fc.GetName())
	}
	out := listenerNamed(t, res, translate.VirtualOutbound)
	if got := tcpOf(t, chainFor(out, call{port: 5555})).GetCluster(); got != translate.BlackHoleCluster {
		t.Errorf("REGISTRY_ONLY catch-all goes to %s", got)
	}
}

func TestSimulateTCPAndTLS(t *testing.T) {
	res := generate(t, load(t, "tcp"), goldenCases[4].proxy)
	db := listenerNamed(t, res, "240.0.0.10_5432")
	tp := tcpOf(t, chainFor(db, call{port: 5432}))
	var got []string
	for _, c := range tp.GetWeightedClusters().GetClusters() {
		got = append(got, c.GetName()+"="+itoa(c.GetWeight()))
	}
	if strings.Join(got, ",") != "outbound|5432|primary|db.data.svc.cluster.local=70,outbound|5432|replica|db.data.svc.cluster.local=30" {
		t.Errorf("tcp weights %v", got)
	}
	ext := listenerNamed(t, res, "0.0.0.0_443")
	if c := tcpOf(t, chainFor(ext, call{port: 443, tls: true, sni: "api.example.com"})).GetCluster(); c != "outbound|443||api.example.com" {
		t.Errorf("sni api.example.com → %s", c)
	}
	if out := listenerNamed(t, res, translate.VirtualOutbound); tcpOf(t, chainFor(out, call{port: 1})).GetCluster() != translate.PassthroughCluster {
		t.Errorf("ALLOW_ANY catch-all is not PassthroughCluster")
	}
	in := listenerNamed(t, res, translate.VirtualInbound)
	if fc := chainFor(in, call{port: 18080}); fc.GetName() != "inbound|18080||" {
		t.Errorf("workload's named port 18080 matched %q", fc.GetName())
	}
	if fc := chainFor(in, call{port: 9000}); tcpOf(t, fc).GetCluster() != "inbound|9000||" {
		t.Errorf("tcp inbound 9000 matched %q", fc.GetName())
	}
	for _, c := range res.Clusters {
		if strings.Contains(c.GetName(), "mirror.example.org") && c.GetType().String() != "STRICT_DNS" {
			t.Errorf("DNS service cluster type %v", c.GetType())
		}
	}
}

func TestSimulateGateway(t *testing.T) {
	res := generate(t, load(t, "gateway"), goldenCases[3].proxy)
	https := listenerNamed(t, res, "0.0.0.0_443")
	shop := chainFor(https, call{port: 443, tls: true, sni: "shop.example.com"})
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := shop.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName(); n != "kubernetes://shop-cert" {
		t.Errorf("shop certificate from %q", n)
	}
	rc := routeConfig(t, res, hcmOf(t, shop).GetRds().GetRouteConfigName())
	if _, r := routeFor(rc, call{authority: "shop.example.com", path: "/cart"}); destination(r) != "outbound|8080||web.shop.svc.cluster.local" {
		t.Errorf("https shop.example.com → %s", destination(r))
	}
	partners := chainFor(https, call{port: 443, tls: true, sni: "partners.example.com"})
	pctx := &tlsv3.DownstreamTlsContext{}
	if err := partners.GetTransportSocket().GetTypedConfig().UnmarshalTo(pctx); err != nil {
		t.Fatal(err)
	}
	if !pctx.GetRequireClientCertificate().GetValue() || pctx.GetCommonTlsContext().GetValidationContextSdsSecretConfig().GetName() != "kubernetes://partners-cert-cacert" {
		t.Errorf("MUTUAL server does not require a client certificate validated by partners-cert-cacert: %v", pctx)
	}
	pass := listenerNamed(t, res, "0.0.0.0_8443")
	if c := tcpOf(t, chainFor(pass, call{port: 8443, tls: true, sni: "db.example.com"})).GetCluster(); c != "outbound|8443||db.shop.svc.cluster.local" {
		t.Errorf("passthrough db.example.com → %s", c)
	}
	if chainFor(pass, call{port: 8443, tls: true, sni: "other.example.com"}) != nil {
		t.Errorf("passthrough accepted an unknown SNI")
	}
	plain := listenerNamed(t, res, "0.0.0.0_80")
	prc := routeConfig(t, res, hcmOf(t, chainFor(plain, call{port: 80})).GetRds().GetRouteConfigName())
	if vh, _ := routeFor(prc, call{authority: "shop.example.com", path: "/"}); vh.GetRequireTls() != route.VirtualHost_ALL {
		t.Errorf("httpsRedirect not applied")
	}
	tcp := listenerNamed(t, res, "0.0.0.0_5432")
	if c := tcpOf(t, chainFor(tcp, call{port: 5432})).GetCluster(); c != "outbound|5432||db.shop.svc.cluster.local" {
		t.Errorf("gateway tcp → %s", c)
	}
}

func TestSimulateGRPC(t *testing.T) {
	snap := load(t, "grpc")
	client := generate(t, snap, goldenCases[1].proxy)
	rc := routeConfig(t, client, "echo.test.svc.cluster.local:7070")
	if _, r := routeFor(rc, call{authority: "echo.test.svc.cluster.local:7070", path: "/grpc.testing.TestService/UnaryCall", headers: map[string]string{"x-user": "alice"}}); destination(r) != "outbound|7070|v2|echo.test.svc.cluster.local" {
		t.Errorf("alice → %s", destination(r))
	}
	server := generate(t, snap, goldenCases[2].proxy)
	l := listenerNamed(t, server, translate.GRPCServerListenerName("127.0.0.1", 17070))
	if a := l.GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 17070 {
		t.Errorf("server listener address %v", a)
	}
	h := hcmOf(t, l.GetFilterChains()[0])
	if r := h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]; r.GetNonForwardingAction() == nil {
		t.Errorf("server route is not NonForwardingAction: %v", r)
	}
	for _, c := range client.Clusters {
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatal(err)
		}
		vc := ctx.GetCommonTlsContext().GetValidationContext()
		//nolint:staticcheck // grpc reads only the deprecated field
		if len(vc.GetMatchSubjectAltNames()) != 1 || len(vc.GetMatchTypedSubjectAltNames()) != 1 || vc.GetCaCertificateProviderInstance().GetInstanceName() != translate.GRPCRootInstance {
			t.Errorf("cluster %s: SAN pinning must use both fields and the rootca provider: %v", c.GetName(), vc)
		}
	}
}
