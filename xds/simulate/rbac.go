package simulate

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplate "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
)

// Envoy's dynamic-metadata namespaces for RBAC shadow results.
const (
	httpRBACNamespace = "envoy.filters.http.rbac"
	netRBACNamespace  = "envoy.filters.network.rbac"
)

// rbacFilter is one RBAC filter instance: enforced rules and shadow rules.
type rbacFilter struct {
	name         string
	rules        *rbac.RBAC
	shadow       *rbac.RBAC
	shadowPrefix string
	namespace    string // dynamic-metadata namespace for shadow results
}

// rbacDecision is the enforced outcome of an RBAC filter.
type rbacDecision struct {
	deny   bool
	policy string // the effective policy, if any
}

// run evaluates shadow rules (recorded in dynamic metadata and hits) and
// then the enforced rules, as Envoy's RBAC filters do.
func (f rbacFilter) run(a *attrs, res *Result) rbacDecision {
	if f.shadow != nil {
		f.runShadow(a, res)
	}
	if f.rules == nil {
		res.tracef("%s: no enforced rules", f.name)
		return rbacDecision{}
	}
	policy, matched := matchPolicies(f.rules, a, res)
	switch f.rules.GetAction() {
	case rbac.RBAC_ALLOW:
		res.tracef("%s: ALLOW rules, matched %q", f.name, policy)
		return rbacDecision{deny: !matched, policy: policy}
	case rbac.RBAC_DENY:
		res.tracef("%s: DENY rules, matched %q", f.name, policy)
		return rbacDecision{deny: matched, policy: policy}
	}
	if matched {
		res.Hits = append(res.Hits, PolicyHit{Filter: f.name, Policy: policy, Action: "LOG"})
	}
	res.tracef("%s: LOG rules, matched %q", f.name, policy)
	return rbacDecision{policy: policy}
}

// runShadow writes <prefix>shadow_effective_policy_id and
// <prefix>shadow_engine_result into the filter's metadata namespace; the
// prefix is shadow_rules_stat_prefix.
func (f rbacFilter) runShadow(a *attrs, res *Result) {
	policy, matched := matchPolicies(f.shadow, a, res)
	result := "allowed"
	switch f.shadow.GetAction() {
	case rbac.RBAC_ALLOW:
		if !matched {
			result = "denied"
		}
	case rbac.RBAC_DENY:
		if matched {
			result = "denied"
		}
	}
	if matched {
		a.meta.set(f.namespace, f.shadowPrefix+"shadow_effective_policy_id", policy)
		res.Hits = append(res.Hits, PolicyHit{Filter: f.name, Policy: policy, Shadow: true, Action: f.shadow.GetAction().String()})
	}
	a.meta.set(f.namespace, f.shadowPrefix+"shadow_engine_result", result)
	res.tracef("%s: shadow %s rules matched %q → %s (metadata %s/%sshadow_*)", f.name, f.shadow.GetAction(), policy, result, f.namespace, f.shadowPrefix)
}

// matchPolicies returns the first matching policy in name order (Envoy
// keeps policies in an ordered map).
func matchPolicies(r *rbac.RBAC, a *attrs, res *Result) (string, bool) {
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if policyMatches(r.GetPolicies()[n], a, res) {
			return n, true
		}
	}
	return "", false
}

func policyMatches(p *rbac.Policy, a *attrs, res *Result) bool {
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
		res.tracef("RBAC CEL conditions are not simulated: policy treated as not matching")
		return false
	}
	return anyPermission(p.GetPermissions(), a) && anyPrincipal(p.GetPrincipals(), a)
}

func anyPermission(ps []*rbac.Permission, a *attrs) bool {
	for _, p := range ps {
		if permissionMatches(p, a) {
			return true
		}
	}
	return false
}

func anyPrincipal(ps []*rbac.Principal, a *attrs) bool {
	for _, p := range ps {
		if principalMatches(p, a) {
			return true
		}
	}
	return false
}

// permissionMatches is Envoy's Permission matcher.
func permissionMatches(p *rbac.Permission, a *attrs) bool {
	switch r := p.GetRule().(type) {
	case *rbac.Permission_Any:
		return r.Any
	case *rbac.Permission_AndRules:
		return allPermissions(r.AndRules.GetRules(), a)
	case *rbac.Permission_OrRules:
		return anyPermission(r.OrRules.GetRules(), a)
	case *rbac.Permission_NotRule:
		return !permissionMatches(r.NotRule, a)
	case *rbac.Permission_Header:
		return headerMatches(r.Header, a.headers)
	case *rbac.Permission_UrlPath:
		return a.http && stringMatches(r.UrlPath.GetPath(), a.urlPath())
	case *rbac.Permission_DestinationIp:
		return cidrContains(r.DestinationIp, a.dstIP)
	case *rbac.Permission_DestinationPort:
		return r.DestinationPort == a.req.DstPort
	case *rbac.Permission_DestinationPortRange:
		return int64(a.req.DstPort) >= int64(r.DestinationPortRange.GetStart()) && int64(a.req.DstPort) < int64(r.DestinationPortRange.GetEnd())
	case *rbac.Permission_Metadata:
		return metadataMatches(r.Metadata, a.meta)
	case *rbac.Permission_RequestedServerName:
		return stringMatches(r.RequestedServerName, a.sni)
	case *rbac.Permission_UriTemplate:
		return a.http && uriTemplateMatches(r.UriTemplate, a.urlPath())
	}
	return false // matcher extensions are not simulated
}

func allPermissions(ps []*rbac.Permission, a *attrs) bool {
	for _, p := range ps {
		if !permissionMatches(p, a) {
			return false
		}
	}
	return true
}

// principalMatches is Envoy's Principal matcher.
//
//nolint:staticcheck // source_ip is deprecated but valid
func principalMatches(p *rbac.Principal, a *attrs) bool {
	switch id := p.GetIdentifier().(type) {
	case *rbac.Principal_Any:
		return id.Any
	case *rbac.Principal_AndIds:
		return allPrincipals(id.AndIds.GetIds(), a)
	case *rbac.Principal_OrIds:
		return anyPrincipal(id.OrIds.GetIds(), a)
	case *rbac.Principal_NotId:
		return !principalMatches(id.NotId, a)
	case *rbac.Principal_Authenticated_:
		return authenticatedMatches(id.Authenticated, a)
	case *rbac.Principal_SourceIp:
		return cidrContains(id.SourceIp, a.srcIP)
	case *rbac.Principal_DirectRemoteIp:
		return cidrContains(id.DirectRemoteIp, a.srcIP)
	case *rbac.Principal_RemoteIp:
		return cidrContains(id.RemoteIp, a.remoteIP)
	case *rbac.Principal_Header:
		return headerMatches(id.Header, a.headers)
	case *rbac.Principal_UrlPath:
		return a.http && stringMatches(id.UrlPath.GetPath(), a.urlPath())
	case *rbac.Principal_Metadata:
		return metadataMatches(id.Metadata, a.meta)
	}
	return false // filter_state and custom principals are not simulated
}

func allPrincipals(ps []*rbac.Principal, a *attrs) bool {
	for _, p := range ps {
		if !principalMatches(p, a) {
			return false
		}
	}
	return true
}

// authenticatedMatches: the connection must be TLS terminated here; with
// a principal_name, one of the peer certificate's URI SANs, DNS SANs or
// subject must match it.
func authenticatedMatches(au *rbac.Principal_Authenticated, a *attrs) bool {
	if !a.ssl {
		return false
	}
	if au.GetPrincipalName() == nil {
		return true
	}
	for _, n := range a.peerNames() {
		if stringMatches(au.GetPrincipalName(), n) {
			return true
		}
	}
	return false
}

// uriTemplateMatches is Envoy's uri_template matcher: literal segments,
// "{x}"/"*" one non-empty segment, "{x=**}"/"**" one or more segments
// (possibly empty: "/a/{**}" matches "/a/" but not "/a").
func uriTemplateMatches(cfg *core.TypedExtensionConfig, path string) bool {
	t := &uritemplate.UriTemplateMatchConfig{}
	if err := cfg.GetTypedConfig().UnmarshalTo(t); err != nil {
		return false
	}
	return templateMatches(strings.Split(strings.TrimPrefix(t.GetPathTemplate(), "/"), "/"), strings.Split(strings.TrimPrefix(path, "/"), "/"))
}

func templateMatches(tpl, segs []string) bool {
	if len(tpl) == 0 {
		return len(segs) == 0
	}
	if isDoubleStar(tpl[0]) {
		for k := 1; k <= len(segs); k++ {
			if templateMatches(tpl[1:], segs[k:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 || !segmentMatches(tpl[0], segs[0]) {
		return false
	}
	return templateMatches(tpl[1:], segs[1:])
}

func isDoubleStar(t string) bool {
	return t == "**" || t == "{**}" || (strings.HasPrefix(t, "{") && strings.HasSuffix(t, "=**}"))
}

func segmentMatches(t, s string) bool {
	if t == "*" || (strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}")) {
		return s != ""
	}
	return t == s
}
