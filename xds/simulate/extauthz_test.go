package simulate

import (
	"errors"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthz "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// fakeChecker allows paths in allow; err makes every check fail.
type fakeChecker struct {
	allow map[string]bool
	err   error
	calls int
}

var _ Checker = (*fakeChecker)(nil)

func (f *fakeChecker) Check(cr CheckRequest) (CheckResponse, error) {
	f.calls++
	if f.err != nil {
		return CheckResponse{}, f.err
	}
	return CheckResponse{Allowed: f.allow[cr.Path]}, nil
}

func extAuthzListener(t *testing.T, ea *extauthz.ExtAuthz, shadow *rbachttp.RBAC) *listener.Listener {
	hf := httpFilter(t, "authz", ea)
	fc := httpChain(t, "http", nil, inlineHCM(catchAllRoutes("backend")), httpFilter(t, "shadow", shadow), hf)
	return &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
}

func TestHTTPExtAuthz(t *testing.T) {
	grpc := &core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: "authz"}}}
	gate := func(key string) *matcher.MetadataMatcher {
		return &matcher.MetadataMatcher{Filter: httpRBACNamespace, Path: []*matcher.MetadataMatcher_PathSegment{{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: key}}},
			Value: strValue(prefix("ext-"))}
	}
	shadow := &rbachttp.RBAC{ShadowRulesStatPrefix: "ext-", ShadowRules: &rbac.RBAC{Action: rbac.RBAC_DENY, Policies: map[string]*rbac.Policy{
		"ext-admin": {Permissions: []*rbac.Permission{{Rule: &rbac.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: prefix("/admin")}}}}},
			Principals: []*rbac.Principal{{Identifier: &rbac.Principal_Any{Any: true}}}}}}}
	req := func(path string) Request {
		return Request{DstIP: "10.0.0.1", DstPort: 80, Protocol: HTTP1, Path: path, Host: "x"}
	}
	cases := []struct {
		name    string
		ea      *extauthz.ExtAuthz
		checker *fakeChecker
		path    string
		status  int
		calls   int
	}{
		{"checker allows", &extauthz.ExtAuthz{Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{allow: map[string]bool{"/ok": true}}, "/ok", 200, 1},
		{"checker denies", &extauthz.ExtAuthz{Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{}, "/ok", 403, 1},
		{"failure closed", &extauthz.ExtAuthz{Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{err: errors.New("down")}, "/ok", 403, 1},
		{"failure_mode_allow", &extauthz.ExtAuthz{FailureModeAllow: true, Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{err: errors.New("down")}, "/ok", 200, 1},
		{"gated by prefixed shadow key: runs", &extauthz.ExtAuthz{FilterEnabledMetadata: gate("ext-shadow_effective_policy_id"), Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{}, "/admin", 403, 1},
		{"gated: shadow did not match, skipped", &extauthz.ExtAuthz{FilterEnabledMetadata: gate("ext-shadow_effective_policy_id"), Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{}, "/public", 200, 0},
		{"gated by unprefixed key never runs", &extauthz.ExtAuthz{FilterEnabledMetadata: gate("shadow_effective_policy_id"), Services: &extauthz.ExtAuthz_GrpcService{GrpcService: grpc}}, &fakeChecker{}, "/admin", 200, 0},
	}
	for _, tc := range cases {
		sim := New(Config{Resources: Resources{Listeners: []*listener.Listener{extAuthzListener(t, tc.ea, shadow)}}, Checker: tc.checker})
		res := sim.Run(req(tc.path))
		if res.Status != tc.status || tc.checker.calls != tc.calls {
			t.Errorf("%s: %s, %d calls; want %d, %d calls\n%v", tc.name, res, tc.checker.calls, tc.status, tc.calls, res.Trace)
		}
	}
}
