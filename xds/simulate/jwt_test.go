package simulate

import (
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwt "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

func provReq(n string) *jwt.JwtRequirement {
	return &jwt.JwtRequirement{RequiresType: &jwt.JwtRequirement_ProviderName{ProviderName: n}}
}

func anyReq(rs ...*jwt.JwtRequirement) *jwt.JwtRequirement {
	return &jwt.JwtRequirement{RequiresType: &jwt.JwtRequirement_RequiresAny{RequiresAny: &jwt.JwtRequirementOrList{Requirements: rs}}}
}

func allReq(rs ...*jwt.JwtRequirement) *jwt.JwtRequirement {
	return &jwt.JwtRequirement{RequiresType: &jwt.JwtRequirement_RequiresAll{RequiresAll: &jwt.JwtRequirementAndList{Requirements: rs}}}
}

var (
	allowMissing         = &jwt.JwtRequirement{RequiresType: &jwt.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}
	allowMissingOrFailed = &jwt.JwtRequirement{RequiresType: &jwt.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}}
)

func jwtConfig() *jwt.JwtAuthentication {
	return &jwt.JwtAuthentication{Providers: map[string]*jwt.JwtProvider{
		"a": {Issuer: "https://a.example.com", PayloadInMetadata: "payload", Audiences: []string{"web"}},
		"b": {Issuer: "https://b.example.com", PayloadInMetadata: "payload",
			NormalizePayloadInMetadata: &jwt.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"scope"}}},
	}}
}

func TestJWTRequirements(t *testing.T) {
	none := JWT{}
	bad := JWT{State: InvalidToken}
	tokA := JWT{State: VerifiedToken, Issuer: "https://a.example.com", Claims: map[string]any{"sub": "u", "aud": "web"}}
	tokAOtherAud := JWT{State: VerifiedToken, Issuer: "https://a.example.com", Claims: map[string]any{"sub": "u", "aud": "other"}}
	tokB := JWT{State: VerifiedToken, Issuer: "https://b.example.com", Claims: map[string]any{"sub": "u"}}
	tokX := JWT{State: VerifiedToken, Issuer: "https://untrusted.example.com", Claims: map[string]any{"sub": "u"}}
	istio := anyReq(provReq("a"), allowMissing) // Ward's single-issuer requirement
	cases := []struct {
		name string
		req  *jwt.JwtRequirement
		tok  JWT
		want jwtFailure
	}{
		{"provider: verified", provReq("a"), tokA, jwtOK},
		{"provider: missing", provReq("a"), none, jwtMissing},
		{"provider: invalid", provReq("a"), bad, jwtInvalid},
		{"provider: other issuer", provReq("a"), tokB, jwtInvalid},
		{"provider: audience not allowed", provReq("a"), tokAOtherAud, jwtAudience},
		{"any: second provider", anyReq(provReq("a"), provReq("b")), tokB, jwtOK},
		{"any: none", anyReq(provReq("a"), provReq("b")), tokX, jwtInvalid},
		{"all: needs both", allReq(provReq("a"), provReq("b")), tokA, jwtInvalid},
		{"allow_missing: missing", allowMissing, none, jwtOK},
		{"allow_missing: invalid", allowMissing, bad, jwtInvalid},
		{"allow_missing: untrusted issuer", allowMissing, tokX, jwtInvalid},
		{"allow_missing_or_failed: invalid", allowMissingOrFailed, bad, jwtOK},
		{"istio: missing passes", istio, none, jwtOK},
		{"istio: invalid rejected", istio, bad, jwtInvalid},
		{"istio: verified", istio, tokA, jwtOK},
	}
	for _, tc := range cases {
		e := &jwtEval{cfg: jwtConfig(), token: tc.tok}
		if got := e.requirement(tc.req); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	e := &jwtEval{cfg: jwtConfig(), token: JWT{State: VerifiedToken, Issuer: "https://b.example.com", Claims: map[string]any{"scope": "read write"}}}
	e.requirement(provReq("b"))
	md := metadata{}
	e.writePayloads(md)
	p, _ := md[jwtNamespace]["payload"].(map[string]any)
	if s, _ := p["scope"].([]any); len(s) != 2 || p["iss"] != "https://b.example.com" {
		t.Errorf("payload %v", p)
	}
}

// TestJWTThroughHCM: jwt_authn rejects an invalid token with 401, writes
// the payload a later RBAC filter reads, and per-route requirement_name
// selects from requirement_map.
func TestJWTThroughHCM(t *testing.T) {
	cfg := jwtConfig()
	cfg.Rules = []*jwt.RequirementRule{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwt.RequirementRule_Requires{Requires: anyReq(provReq("a"), allowMissing)}}}
	cfg.RequirementMap = map[string]*jwt.JwtRequirement{"strict": provReq("a")}
	allow := &rbachttp.RBAC{Rules: &rbac.RBAC{Action: rbac.RBAC_ALLOW, Policies: map[string]*rbac.Policy{
		"sub-u": {Permissions: []*rbac.Permission{{Rule: &rbac.Permission_Any{Any: true}}},
			Principals: []*rbac.Principal{{Identifier: &rbac.Principal_Metadata{Metadata: jwtMeta("sub", strValue(exact("u")))}}}}}}}
	rc := catchAllRoutes("backend")
	strict := &route.Route{Name: "strict", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/strict"}}, Action: toCluster("backend"),
		TypedPerFilterConfig: map[string]*anypb.Any{"jwt": mustAny(t, &jwt.PerRouteConfig{RequirementSpecifier: &jwt.PerRouteConfig_RequirementName{RequirementName: "strict"}})}}
	rc.VirtualHosts[0].Routes = append([]*route.Route{strict}, rc.VirtualHosts[0].Routes...)
	fc := httpChain(t, "http", nil, inlineHCM(rc), httpFilter(t, "jwt", cfg), httpFilter(t, "rbac", allow))
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	req := func(path string, tok JWT) Request {
		return Request{DstIP: "10.0.0.1", DstPort: 80, Protocol: HTTP1, Path: path, Host: "x", JWT: tok}
	}
	tokA := JWT{State: VerifiedToken, Issuer: "https://a.example.com", Claims: map[string]any{"sub": "u", "aud": []any{"web"}}}
	for _, tc := range []struct {
		name   string
		r      Request
		status int
		filter string
	}{
		{"verified, rbac allows", req("/", tokA), 200, ""},
		{"invalid token", req("/", JWT{State: InvalidToken}), 401, "jwt"},
		{"missing: jwt passes, rbac denies", req("/", JWT{}), 403, "rbac"},
		{"strict route needs a token", req("/strict", JWT{}), 401, "jwt"},
	} {
		res := run(l, tc.r)
		if res.Status != tc.status || res.Filter != tc.filter {
			t.Errorf("%s: %s; want status %d by %q\n%v", tc.name, res, tc.status, tc.filter, res.Trace)
		}
	}
}
