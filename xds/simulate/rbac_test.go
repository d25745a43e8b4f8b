package simulate

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplate "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	v3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func exact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s}}
}

func jwtMeta(key string, vm *matcher.ValueMatcher) *matcher.MetadataMatcher {
	return &matcher.MetadataMatcher{Filter: jwtNamespace, Value: vm, Path: []*matcher.MetadataMatcher_PathSegment{
		{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: "payload"}},
		{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: key}}}}
}

func strValue(sm *matcher.StringMatcher) *matcher.ValueMatcher {
	return &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_StringMatch{StringMatch: sm}}
}

// testAttrs is an mTLS HTTP request from 10.1.2.3 (XFF 203.0.113.9) to
// 10.0.0.2:8080.
func testAttrs() *attrs {
	req := &Request{SrcIP: "10.1.2.3", SrcPort: 40000, DstIP: "10.0.0.2", DstPort: 8080, RemoteIP: "203.0.113.9", TLS: true, SNI: "web.foo.svc",
		PeerURISAN: "spiffe://cluster.local/ns/a/sa/b", PeerDNSSANs: []string{"b.a.svc"}, Protocol: HTTP1}
	a := newConnAttrs(req)
	a.ssl, a.http, a.path = true, true, "/api/v1/items?x=1"
	a.headers = map[string]string{":method": "GET", ":path": a.path, ":authority": "web.foo.svc", "x-user": "alice"}
	a.meta.set(jwtNamespace, "payload", map[string]any{"iss": "https://issuer.example.com/a", "sub": "u1", "groups": []any{"admins", "dev"}, "n": float64(3)})
	return a
}

func TestPrincipals(t *testing.T) {
	auth := func(sm *matcher.StringMatcher) *rbac.Principal {
		return &rbac.Principal{Identifier: &rbac.Principal_Authenticated_{Authenticated: &rbac.Principal_Authenticated{PrincipalName: sm}}}
	}
	anyID := &rbac.Principal{Identifier: &rbac.Principal_Any{Any: true}}
	cases := []struct {
		name string
		p    *rbac.Principal
		want bool
	}{
		{"any", anyID, true},
		{"authenticated uri san", auth(exact("spiffe://cluster.local/ns/a/sa/b")), true},
		{"authenticated dns san", auth(exact("b.a.svc")), true},
		{"authenticated other", auth(exact("spiffe://cluster.local/ns/x/sa/y")), false},
		{"authenticated no name", auth(nil), true},
		{"direct_remote_ip", &rbac.Principal{Identifier: &rbac.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.1.0.0", 16)}}, true},
		{"direct_remote_ip miss", &rbac.Principal{Identifier: &rbac.Principal_DirectRemoteIp{DirectRemoteIp: cidr("203.0.113.0", 24)}}, false},
		{"remote_ip (xff)", &rbac.Principal{Identifier: &rbac.Principal_RemoteIp{RemoteIp: cidr("203.0.113.0", 24)}}, true},
		{"source_ip", &rbac.Principal{Identifier: &rbac.Principal_SourceIp{SourceIp: cidr("10.1.2.3", 32)}}, true},
		{"header", &rbac.Principal{Identifier: &rbac.Principal_Header{Header: &route.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("alice")}}}}, true},
		{"header absent", &rbac.Principal{Identifier: &rbac.Principal_Header{Header: &route.HeaderMatcher{Name: "x-other", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, false},
		{"header absent, present_match false", &rbac.Principal{Identifier: &rbac.Principal_Header{Header: &route.HeaderMatcher{Name: "x-other", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: false}}}}, true},
		{"url_path", &rbac.Principal{Identifier: &rbac.Principal_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: exact("/api/v1/items")}}}}, true},
		{"metadata whole iss/sub", &rbac.Principal{Identifier: &rbac.Principal_Metadata{Metadata: jwtMeta("iss", strValue(exact("https://issuer.example.com/a")))}}, true},
		{"metadata list one_of", &rbac.Principal{Identifier: &rbac.Principal_Metadata{Metadata: jwtMeta("groups", &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_ListMatch{ListMatch: &matcher.ListMatcher{MatchPattern: &matcher.ListMatcher_OneOf{OneOf: strValue(exact("admins"))}}}})}}, true},
		{"metadata missing", &rbac.Principal{Identifier: &rbac.Principal_Metadata{Metadata: jwtMeta("aud", &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_PresentMatch{PresentMatch: true}})}}, false},
		{"metadata double", &rbac.Principal{Identifier: &rbac.Principal_Metadata{Metadata: jwtMeta("n", &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_DoubleMatch{DoubleMatch: &matcher.DoubleMatcher{MatchPattern: &matcher.DoubleMatcher_Exact{Exact: 3}}}})}}, true},
		{"metadata inverted", &rbac.Principal{Identifier: &rbac.Principal_Metadata{Metadata: func() *matcher.MetadataMatcher {
			m := jwtMeta("sub", strValue(exact("u1")))
			m.Invert = true
			return m
		}()}}, false},
		{"and_ids", &rbac.Principal{Identifier: &rbac.Principal_AndIds{AndIds: &rbac.Principal_Set{Ids: []*rbac.Principal{anyID, auth(prefix("spiffe://cluster.local/ns/a/"))}}}}, true},
		{"and_ids miss", &rbac.Principal{Identifier: &rbac.Principal_AndIds{AndIds: &rbac.Principal_Set{Ids: []*rbac.Principal{anyID, auth(prefix("spiffe://x/"))}}}}, false},
		{"or_ids", &rbac.Principal{Identifier: &rbac.Principal_OrIds{OrIds: &rbac.Principal_Set{Ids: []*rbac.Principal{auth(prefix("spiffe://x/")), anyID}}}}, true},
		{"not_id", &rbac.Principal{Identifier: &rbac.Principal_NotId{NotId: anyID}}, false},
	}
	for _, tc := range cases {
		if got := principalMatches(tc.p, testAttrs()); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	plain := testAttrs()
	plain.ssl = false
	if principalMatches(auth(nil), plain) {
		t.Error("authenticated matched a connection without TLS")
	}
}

func TestPermissions(t *testing.T) {
	anyP := &rbac.Permission{Rule: &rbac.Permission_Any{Any: true}}
	tmpl := mustAny(t, &uritemplate.UriTemplateMatchConfig{PathTemplate: "/api/{*}/items"})
	cases := []struct {
		name string
		p    *rbac.Permission
		want bool
	}{
		{"any", anyP, true},
		{"header :method", &rbac.Permission{Rule: &rbac.Permission_Header{Header: &route.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("GET")}}}}, true},
		{"header :path includes query", &rbac.Permission{Rule: &rbac.Permission_Header{Header: &route.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("/api/v1/items")}}}}, false},
		{"url_path excludes query", &rbac.Permission{Rule: &rbac.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: exact("/api/v1/items")}}}}, true},
		{"url_path prefix", &rbac.Permission{Rule: &rbac.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: prefix("/admin")}}}}, false},
		{"destination_ip", &rbac.Permission{Rule: &rbac.Permission_DestinationIp{DestinationIp: cidr("10.0.0.0", 24)}}, true},
		{"destination_port", &rbac.Permission{Rule: &rbac.Permission_DestinationPort{DestinationPort: 8080}}, true},
		{"destination_port miss", &rbac.Permission{Rule: &rbac.Permission_DestinationPort{DestinationPort: 9090}}, false},
		{"destination_port_range", &rbac.Permission{Rule: &rbac.Permission_DestinationPortRange{DestinationPortRange: &v3.Int32Range{Start: 8000, End: 8081}}}, true},
		{"destination_port_range end exclusive", &rbac.Permission{Rule: &rbac.Permission_DestinationPortRange{DestinationPortRange: &v3.Int32Range{Start: 8000, End: 8080}}}, false},
		{"requested_server_name", &rbac.Permission{Rule: &rbac.Permission_RequestedServerName{RequestedServerName: exact("web.foo.svc")}}, true},
		{"metadata", &rbac.Permission{Rule: &rbac.Permission_Metadata{Metadata: jwtMeta("sub", strValue(exact("u1")))}}, true},
		{"uri_template", &rbac.Permission{Rule: &rbac.Permission_UriTemplate{UriTemplate: &core.TypedExtensionConfig{Name: "t", TypedConfig: tmpl}}}, true},
		{"and_rules", &rbac.Permission{Rule: &rbac.Permission_AndRules{AndRules: &rbac.Permission_Set{Rules: []*rbac.Permission{anyP, &rbac.Permission{Rule: &rbac.Permission_DestinationPort{DestinationPort: 1}}}}}}, false},
		{"or_rules", &rbac.Permission{Rule: &rbac.Permission_OrRules{OrRules: &rbac.Permission_Set{Rules: []*rbac.Permission{&rbac.Permission{Rule: &rbac.Permission_DestinationPort{DestinationPort: 1}}, anyP}}}}, true},
		{"not_rule", &rbac.Permission{Rule: &rbac.Permission_NotRule{NotRule: &rbac.Permission{Rule: &rbac.Permission_DestinationPort{DestinationPort: 1}}}}, true},
	}
	for _, tc := range cases {
		if got := permissionMatches(tc.p, testAttrs()); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// policy is "any permission" for a principal.
func policy(p *rbac.Principal) *rbac.Policy {
	return &rbac.Policy{Permissions: []*rbac.Permission{{Rule: &rbac.Permission_Any{Any: true}}}, Principals: []*rbac.Principal{p}}
}

func byPrincipal(name string) *rbac.Principal {
	return &rbac.Principal{Identifier: &rbac.Principal_Authenticated_{Authenticated: &rbac.Principal_Authenticated{PrincipalName: exact(name)}}}
}

// rbacListener is an mTLS HTTP listener with the given HTTP RBAC filters.
func rbacListener(t *testing.T, filters ...*rbachttp.RBAC) *listener.Listener {
	var hf []*hcm.HttpFilter
	for i, f := range filters {
		hf = append(hf, httpFilter(t, "rbac"+string(rune('0'+i)), f))
	}
	fc := httpChain(t, "http", nil, inlineHCM(catchAllRoutes("backend")), hf...)
	fc.TransportSocket = mtlsSocket(t, true)
	return &listener.Listener{Name: "l", Address: addr("0.0.0.0", 8080), FilterChains: []*listener.FilterChain{fc}}
}

func TestRBACActions(t *testing.T) {
	alice := "spiffe://cluster.local/ns/a/sa/alice"
	rules := func(a rbac.RBAC_Action) *rbac.RBAC {
		return &rbac.RBAC{Action: a, Policies: map[string]*rbac.Policy{"ns[a]-policy[p]-rule[0]": policy(byPrincipal(alice))}}
	}
	req := func(peer string) Request {
		return Request{DstIP: "10.0.0.2", DstPort: 8080, TLS: true, PeerURISAN: peer, Protocol: HTTP1, Path: "/", Host: "web"}
	}
	cases := []struct {
		name    string
		filter  *rbachttp.RBAC
		peer    string
		verdict Verdict
		policy  string
		hits    int
	}{
		{"ALLOW match", &rbachttp.RBAC{Rules: rules(rbac.RBAC_ALLOW)}, alice, Allowed, "ns[a]-policy[p]-rule[0]", 0},
		{"ALLOW no match", &rbachttp.RBAC{Rules: rules(rbac.RBAC_ALLOW)}, "spiffe://x/ns/b/sa/bob", Denied, "", 0},
		{"DENY match", &rbachttp.RBAC{Rules: rules(rbac.RBAC_DENY)}, alice, Denied, "ns[a]-policy[p]-rule[0]", 0},
		{"DENY no match", &rbachttp.RBAC{Rules: rules(rbac.RBAC_DENY)}, "spiffe://x/ns/b/sa/bob", Allowed, "", 0},
		{"LOG match is recorded, allowed", &rbachttp.RBAC{Rules: rules(rbac.RBAC_LOG)}, alice, Allowed, "", 1},
		{"shadow DENY recorded only", &rbachttp.RBAC{ShadowRules: rules(rbac.RBAC_DENY)}, alice, Allowed, "", 1},
		{"empty ALLOW denies all", &rbachttp.RBAC{Rules: &rbac.RBAC{Action: rbac.RBAC_ALLOW}}, alice, Denied, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := run(rbacListener(t, tc.filter), req(tc.peer))
			if res.Verdict != tc.verdict || res.Policy != tc.policy || len(res.Hits) != tc.hits {
				t.Errorf("%s policy=%q hits=%v; want %s %q %d hits\n%v", res, res.Policy, res.Hits, tc.verdict, tc.policy, tc.hits, res.Trace)
			}
			if tc.verdict == Denied && (res.Status != 403 || res.Filter != "rbac0") {
				t.Errorf("denial status %d by %q", res.Status, res.Filter)
			}
		})
	}
}

// TestShadowMetadataKeyIsPrefixed: Envoy writes the shadow result under
// <shadow_rules_stat_prefix>shadow_effective_policy_id, which is what an
// ext_authz filter_enabled_metadata has to name.
func TestShadowMetadataKeyIsPrefixed(t *testing.T) {
	a := testAttrs()
	res := &Result{}
	f := rbacFilter{name: "s", shadow: &rbac.RBAC{Action: rbac.RBAC_DENY, Policies: map[string]*rbac.Policy{"p": policy(&rbac.Principal{Identifier: &rbac.Principal_Any{Any: true}})}},
		shadowPrefix: "pre_", namespace: httpRBACNamespace}
	f.run(a, res)
	if a.meta[httpRBACNamespace]["pre_shadow_effective_policy_id"] != "p" || a.meta[httpRBACNamespace]["pre_shadow_engine_result"] != "denied" {
		t.Errorf("metadata %v", a.meta)
	}
	if _, ok := a.meta[httpRBACNamespace]["shadow_effective_policy_id"]; ok {
		t.Errorf("unprefixed key written: %v", a.meta)
	}
}

func TestNetworkRBAC(t *testing.T) {
	deny := &rbacnet.RBAC{StatPrefix: "x", Rules: &rbac.RBAC{Action: rbac.RBAC_DENY, Policies: map[string]*rbac.Policy{
		"deny-bob": policy(byPrincipal("spiffe://cluster.local/ns/b/sa/bob"))}}}
	fc := &listener.FilterChain{Name: "tcp", TransportSocket: mtlsSocket(t, true), Filters: []*listener.Filter{
		{Name: "ward.authz.rbac.deny", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, deny)}}, tcpFilter(t, "db")}}
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 5432), FilterChains: []*listener.FilterChain{fc}}
	res := run(l, Request{DstPort: 5432, TLS: true, PeerURISAN: "spiffe://cluster.local/ns/b/sa/bob"})
	if res.Verdict != Denied || res.Policy != "deny-bob" || res.Filter != "ward.authz.rbac.deny" {
		t.Errorf("bob: %s", res)
	}
	if res := run(l, Request{DstPort: 5432, TLS: true, PeerURISAN: "spiffe://cluster.local/ns/a/sa/alice"}); res.Verdict != Allowed || res.Cluster != "db" {
		t.Errorf("alice: %s", res)
	}
}

// TestRemoteIPFromXFF: without use_remote_address the last XFF entry is
// the client Envoy's remote_ip matches; with it, the connection address.
func TestRemoteIPFromXFF(t *testing.T) {
	remote := &rbachttp.RBAC{Rules: &rbac.RBAC{Action: rbac.RBAC_ALLOW, Policies: map[string]*rbac.Policy{
		"remote": {Permissions: []*rbac.Permission{{Rule: &rbac.Permission_Any{Any: true}}},
			Principals: []*rbac.Principal{{Identifier: &rbac.Principal_RemoteIp{RemoteIp: cidr("203.0.113.0", 24)}}}}}}}
	h := inlineHCM(catchAllRoutes("backend"))
	fc := httpChain(t, "http", nil, h, httpFilter(t, "rbac", remote))
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	req := Request{DstIP: "10.0.0.1", DstPort: 80, SrcIP: "10.9.9.9", Protocol: HTTP1, Path: "/", Host: "x",
		Headers: map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}}
	if res := run(l, req); res.Verdict != Allowed {
		t.Errorf("XFF client not used: %s", res)
	}
	h.UseRemoteAddress = wrapperspb.Bool(true)
	fc = httpChain(t, "http", nil, h, httpFilter(t, "rbac", remote))
	l.FilterChains = []*listener.FilterChain{fc}
	if res := run(l, req); res.Verdict != Denied {
		t.Errorf("use_remote_address trusted XFF: %s", res)
	}
}

func TestURITemplate(t *testing.T) {
	for _, tc := range []struct {
		tpl, path string
		want      bool
	}{
		{"/files/{**}", "/files/a/b", true},
		{"/files/{**}", "/files/", true},
		{"/files/{**}", "/files", false},
		{"/docs/{**}/index.html", "/docs/a/b/index.html", true},
		{"/docs/{**}/index.html", "/docs/a/b/other.html", false},
		{"/docs/{**}/index.html", "/docs/index.html", false},
		{"/api/{*}/items", "/api/v1/items", true},
		{"/api/{*}/items", "/api//items", false},
		{"/api/{*}/items", "/api/v1/v2/items", false},
	} {
		cfg := &core.TypedExtensionConfig{Name: "t", TypedConfig: mustAny(t, &uritemplate.UriTemplateMatchConfig{PathTemplate: tc.tpl})}
		if got := uriTemplateMatches(cfg, tc.path); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.tpl, tc.path, got, tc.want)
		}
	}
}
