package simulate

import (
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func toCluster(c string) *route.Route_Route {
	return &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: c}}}
}

func vhost(name string, domains ...string) *route.VirtualHost {
	return &route.VirtualHost{Name: name, Domains: domains, Routes: []*route.Route{{Name: name, Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}, Action: toCluster(name)}}}
}

func TestVirtualHostSelection(t *testing.T) {
	rc := &route.RouteConfiguration{VirtualHosts: []*route.VirtualHost{
		vhost("exact", "api.example.com", "api.example.com:8080"),
		vhost("suffix", "*.example.com"),
		vhost("longer-suffix", "*.b.example.com"),
		vhost("prefix", "api.*"),
		vhost("any", "*"),
	}}
	for host, want := range map[string]string{
		"api.example.com":      "exact",
		"API.Example.com":      "exact",
		"api.example.com:8080": "exact",
		"api.example.com:9090": "prefix", // the port is part of the host: "*.example.com" fails
		"x.example.com":        "suffix",
		"a.b.example.com":      "longer-suffix",
		"api.other.org":        "prefix",
		"other.org":            "any",
	} {
		if got := selectVirtualHost(rc, host).GetName(); got != want {
			t.Errorf("host %q → %q, want %q", host, got, want)
		}
	}
	rc.IgnorePortInHostMatching = true
	if got := selectVirtualHost(rc, "api.example.com:9090").GetName(); got != "exact" {
		t.Errorf("ignore_port_in_host_matching: %q", got)
	}
}

func TestRouteMatch(t *testing.T) {
	h := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	rm := func(m *route.RouteMatch) *route.RouteMatch { return m }
	cases := []struct {
		name string
		m    *route.RouteMatch
		path string
		hdr  map[string]string
		want bool
	}{
		{"prefix", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/api"}}), "/api/x?q", nil, true},
		{"prefix case-sensitive", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/api"}}), "/API/x", nil, false},
		{"prefix case-insensitive", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/api"}, CaseSensitive: wrapperspb.Bool(false)}), "/API/x", nil, true},
		{"path ignores query", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/old"}}), "/old?x=1", nil, true},
		{"path exact", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/old"}}), "/old/", nil, false},
		{"safe_regex full match", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/tea.*"}}}), "/teapot", nil, true},
		{"safe_regex anchored", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "tea.*"}}}), "/teapot", nil, false},
		{"path_separated_prefix", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}), "/api/x", nil, true},
		{"path_separated_prefix not a segment", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}), "/apix", nil, false},
		{"header", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Headers: []*route.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("alice")}}}}), "/", h("x-user", "alice"), true},
		{"header inverted", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Headers: []*route.HeaderMatcher{{Name: "x-canary", InvertMatch: true, HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}), "/", h("x-canary", "1"), false},
		{"query present", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*route.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}}), "/x?debug=1", nil, true},
		{"query value", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*route.QueryParameterMatcher{{Name: "v", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: exact("2")}}}}), "/x?v=1", nil, false},
		{"grpc", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Grpc: &route.RouteMatch_GrpcRouteMatchOptions{}}), "/svc/M", h("content-type", "application/grpc"), true},
		{"grpc needs content-type", rm(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}, Grpc: &route.RouteMatch_GrpcRouteMatchOptions{}}), "/svc/M", nil, false},
	}
	for _, tc := range cases {
		hdr := tc.hdr
		if hdr == nil {
			hdr = map[string]string{}
		}
		if got := routeMatches(tc.m, routeRequest{path: tc.path, headers: hdr}); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRouteActions runs requests through an HCM to each kind of action.
func TestRouteActions(t *testing.T) {
	wc := &route.RouteAction{ClusterSpecifier: &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{Clusters: []*route.WeightedCluster_ClusterWeight{
		{Name: "v1", Weight: wrapperspb.UInt32(80)}, {Name: "v2", Weight: wrapperspb.UInt32(20)}}}}}
	rc := &route.RouteConfiguration{Name: "rc", VirtualHosts: []*route.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*route.Route{
		{Name: "redirect", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/old"}}, Action: &route.Route_Redirect{Redirect: &route.RedirectAction{PathRewriteSpecifier: &route.RedirectAction_PathRedirect{PathRedirect: "/new"}}}},
		{Name: "teapot", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/teapot"}}, Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 418}}},
		{Name: "weighted", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/w"}}, Action: &route.Route_Route{Route: wc}},
		{Name: "header", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/h"}}, Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"}}}},
		{Name: "admin", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/admin"}}, Action: toCluster("admin")},
	}}}}
	fc := httpChain(t, "http", nil, inlineHCM(rc))
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	req := func(path string) Request {
		return Request{DstIP: "10.0.0.1", DstPort: 80, Protocol: HTTP1, Path: path, Host: "x", Headers: map[string]string{"x-cluster": "from-header"}}
	}
	for _, tc := range []struct {
		path    string
		verdict Verdict
		status  int
		cluster string
	}{
		{"/old", Redirected, 301, ""},
		{"/teapot", DirectResponse, 418, ""},
		{"/w", Allowed, 200, "v1"},
		{"/h", Allowed, 200, "from-header"},
		{"/public/../admin", Allowed, 200, ""}, // normalize_path off here: no route
		{"/nothing", NoRoute, 404, ""},
	} {
		res := run(l, req(tc.path))
		if tc.path == "/public/../admin" {
			if res.Route == "admin" {
				t.Errorf("without normalize_path %q reached the admin route", tc.path)
			}
			continue
		}
		if res.Verdict != tc.verdict || res.Status != tc.status || res.Cluster != tc.cluster {
			t.Errorf("%s: %s; want %s %d %q", tc.path, res, tc.verdict, tc.status, tc.cluster)
		}
	}
	if res := run(l, req("/w")); len(res.Weighted) != 2 || res.Weighted[1] != (WeightedCluster{"v2", 20}) {
		t.Errorf("weighted choices %v", res.Weighted)
	}
}

func TestCodecAndHostPort(t *testing.T) {
	rc := &route.RouteConfiguration{Name: "rc", VirtualHosts: []*route.VirtualHost{vhost("exact", "api.example.com"), vhost("any", "*")}}
	h := inlineHCM(rc)
	h.CodecType = hcm.HttpConnectionManager_HTTP1
	h.StripMatchingHostPort = true
	fc := httpChain(t, "http", nil, h)
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	req := Request{DstIP: "10.0.0.1", DstPort: 80, Protocol: HTTP1, Path: "/", Host: "api.example.com:80"}
	if res := run(l, req); res.VirtualHost != "exact" {
		t.Errorf("strip_matching_host_port: %s vhost %q", res, res.VirtualHost)
	}
	req.Host = "api.example.com:8080"
	if res := run(l, req); res.VirtualHost != "any" {
		t.Errorf("non-matching port kept: vhost %q", res.VirtualHost)
	}
	req.Protocol = HTTP2
	if res := run(l, req); res.Verdict != Rejected {
		t.Errorf("HTTP/2 on an HTTP/1 codec: %s", res)
	}
}
