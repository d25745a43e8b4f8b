package simulate

import (
	"maps"
	"strings"

	fault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	headermutation "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwt "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	extauthzhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
)

// runHTTPFilter runs one HTTP filter; false means the stream ended (a
// local reply, or the router forwarded it).
func (s *Simulator) runHTTPFilter(f *hcm.HttpFilter, st *stream, res *Result) bool {
	per, disabled := st.perRoute(f)
	if disabled {
		res.tracef("%s: disabled for this route", f.GetName())
		return true
	}
	switch cfg := unpack(f.GetTypedConfig()).(type) {
	case *jwt.JwtAuthentication:
		return jwtFilter(f.GetName(), cfg, per, st, res)
	case *rbachttp.RBAC:
		return httpRBAC(f.GetName(), cfg, per, st, res)
	case *extauthzhttp.ExtAuthz:
		return s.httpExtAuthz(f.GetName(), cfg, per, st, res)
	case *fault.HTTPFault:
		return faultFilter(f.GetName(), cfg, per, res)
	case *headermutation.HeaderMutation:
		mutateRequestHeaders(f.GetName(), cfg, st.a.headers, res)
		return true
	case *router.Router:
		res.UpstreamHeaders = maps.Clone(st.a.headers)
		s.router(st, res)
		return false
	default:
		res.tracef("HTTP filter %s: not simulated, passes", f.GetName())
		return true
	}
}

// perRoute returns the filter's per-route config and whether the filter
// is disabled for this request (a disabled filter runs only where a
// route enables it).
func (st *stream) perRoute(f *hcm.HttpFilter) (proto.Message, bool) {
	var per proto.Message
	if st.vh != nil {
		per = perFilterConfig(f.GetName(), st.rc, st.vh, st.rt)
	}
	if fc, ok := per.(filterConfig); ok {
		if fc.GetDisabled() {
			return nil, true
		}
		return unpack(fc.GetConfig()), false
	}
	return per, f.GetDisabled() && per == nil
}

// jwtFilter is envoy.filters.http.jwt_authn.
func jwtFilter(name string, cfg *jwt.JwtAuthentication, per proto.Message, st *stream, res *Result) bool {
	pr, _ := per.(*jwt.PerRouteConfig)
	if pr.GetDisabled() {
		res.tracef("%s: disabled per route", name)
		return true
	}
	if cfg.GetBypassCorsPreflight() && isPreflight(st.a.headers) {
		res.tracef("%s: CORS preflight bypassed", name)
		return true
	}
	req, ok := findRequirement(cfg, pr, st.rr)
	if !ok {
		res.tracef("%s: no requirement applies", name)
		return true
	}
	sanitizeJWTHeaders(cfg, st.a.headers)
	e := &jwtEval{cfg: cfg, token: st.a.req.JWT}
	f := e.requirement(req)
	e.writePayloads(st.a.meta)
	e.writeHeaders(st.a.headers)
	if f != jwtOK {
		res.Filter = name
		res.tracef("%s: %s", name, f)
		res.finish(Denied, f.status(), "jwt_authn: "+f.String())
		return false
	}
	res.tracef("%s: requirement satisfied (verified by %v)", name, e.verified)
	return true
}

func isPreflight(h map[string]string) bool {
	return h[":method"] == "OPTIONS" && h["origin"] != "" && h["access-control-request-method"] != ""
}

// httpRBAC is envoy.filters.http.rbac, with RBACPerRoute overrides.
func httpRBAC(name string, cfg *rbachttp.RBAC, per proto.Message, st *stream, res *Result) bool {
	if pr, ok := per.(*rbachttp.RBACPerRoute); ok {
		if pr.GetRbac() == nil {
			res.tracef("%s: disabled per route", name)
			return true
		}
		cfg = pr.GetRbac()
	}
	f := rbacFilter{name: name, rules: cfg.GetRules(), shadow: cfg.GetShadowRules(), shadowPrefix: cfg.GetShadowRulesStatPrefix(), namespace: httpRBACNamespace}
	d := f.run(st.a, res)
	if d.deny {
		res.Filter, res.Policy = name, d.policy
		res.finish(Denied, 403, "rbac_access_denied")
		return false
	}
	if cfg.GetRules().GetAction().String() == "ALLOW" && d.policy != "" {
		res.Policy = d.policy
	}
	return true
}

// httpExtAuthz is envoy.filters.http.ext_authz.
func (s *Simulator) httpExtAuthz(name string, cfg *extauthzhttp.ExtAuthz, per proto.Message, st *stream, res *Result) bool {
	pr, _ := per.(*extauthzhttp.ExtAuthzPerRoute)
	if pr.GetDisabled() {
		res.tracef("%s: disabled per route", name)
		return true
	}
	if fe := cfg.GetFilterEnabled(); fe != nil && fe.GetDefaultValue().GetNumerator() == 0 {
		res.tracef("%s: filter_enabled is 0%%", name)
		return true
	}
	call := extAuthzCall{filter: name, enabledBy: cfg.GetFilterEnabledMetadata(), denyAtDisable: cfg.GetDenyAtDisable().GetDefaultValue().GetValue(), failOpen: cfg.GetFailureModeAllow(), errorStatus: cfg.GetStatusOnError()}
	if !call.gate(st.a, res) {
		if call.denyAtDisable {
			res.Filter = name
			res.finish(Denied, 403, "ext_authz_deny_at_disable")
			return false
		}
		return true
	}
	cr := CheckRequest{Filter: name, Cluster: cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName(), Request: st.a.req, Path: st.a.path,
		Headers: st.a.headers, ContextExtensions: pr.GetCheckSettings().GetContextExtensions(), Metadata: copyMeta(st.a.meta, cfg.GetMetadataContextNamespaces()),
		InitialMetadata: initialMetadata(cfg.GetGrpcService())}
	ok, status := call.decide(s, cr, res)
	if !ok {
		res.Filter = name
		res.finish(Denied, status, "ext_authz_denied")
	}
	return ok
}

// faultFilter applies an abort that always fires (100%); partial
// percentages are traced and assumed not to fire.
func faultFilter(name string, cfg *fault.HTTPFault, per proto.Message, res *Result) bool {
	if pr, ok := per.(*fault.HTTPFault); ok {
		cfg = pr
	}
	ab := cfg.GetAbort()
	if ab == nil {
		return true
	}
	pct := ab.GetPercentage()
	if pct == nil || percentOf(pct.GetNumerator(), pct.GetDenominator().String()) < 100 {
		res.tracef("%s: abort at %v%% assumed not to fire", name, percentOf(pct.GetNumerator(), pct.GetDenominator().String()))
		return true
	}
	status := int(ab.GetHttpStatus())
	if ab.GetGrpcStatus() != 0 {
		status = 200
	}
	res.Filter = name
	res.finish(Denied, status, "fault_abort")
	return false
}

func percentOf(n uint32, denom string) float64 {
	switch denom {
	case "TEN_THOUSAND":
		return float64(n) / 100
	case "MILLION":
		return float64(n) / 10000
	}
	return float64(n)
}

// mutateRequestHeaders is envoy.filters.http.header_mutation's request
// side: removals, and appends (as set: one value per header here).
func mutateRequestHeaders(name string, cfg *headermutation.HeaderMutation, h map[string]string, res *Result) {
	for _, m := range cfg.GetMutations().GetRequestMutations() {
		if r := m.GetRemove(); r != "" {
			delete(h, strings.ToLower(r))
			res.tracef("%s: removed request header %s", name, r)
		}
		if a := m.GetAppend().GetHeader(); a != nil {
			h[strings.ToLower(a.GetKey())] = a.GetValue()
			res.tracef("%s: set request header %s", name, a.GetKey())
		}
	}
}
