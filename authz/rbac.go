package authz

import (
	"fmt"
	"github.com/wardmesh/ward/mesh/schema"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"net/netip"
	"strconv"
)

// RBACSet is the native Envoy RBAC form of the policies that apply to one
// workload, for one protocol. Deny and Allow are enforced in that order
// (Allow is nil when no enforced ALLOW policy applies, which allows
// everything); Audit has action LOG. Dry-run policies are shadow rules of
// the filter of their action. Each Envoy policy is one Istio rule, named
// ns[<ns>]-policy[<name>]-rule[<i>].
type RBACSet struct {
	Deny  *rbacv3.RBAC
	Allow *rbacv3.RBAC
	Audit *rbacv3.RBAC
	// DenyShadow, AllowShadow and AuditShadow hold dry-run rules.
	DenyShadow, AllowShadow, AuditShadow *rbacv3.RBAC
	// Custom holds the CUSTOM rules per provider; the Envoy chain uses them
	// as shadow rules that gate the provider's ext_authz filter.
	Custom map[string]*rbacv3.RBAC
}

// BuildRBAC renders policies (as returned for one workload) as Envoy RBAC
// for HTTP (forTCP=false) or TCP. HTTP-only conditions follow Istio's TCP
// rules (ALLOW rules dropped, others broadened).
func BuildRBAC(ps []*Policy, forTCP bool) (*RBACSet, error) {
	s := &RBACSet{Custom: map[string]*rbacv3.RBAC{}}
	for _, p := range ps {
		if p.Action == ActionCustom && p.DryRun {
			continue // dry-run CUSTOM policies never consult their provider
		}
		target := s.target(p)
		for i, r := range p.Rules {
			if forTCP {
				var ok bool
				if r, ok = r.ForTCP(p.Action); !ok {
					continue
				}
			}
			pol, err := rbacPolicy(r)
			if err != nil {
				return nil, fmt.Errorf("rbac for %s: %w", p.RuleName(i), err)
			}
			target.Policies[p.RuleName(i)] = pol
		}
	}
	return s, nil
}

// target returns (creating it) the RBAC config a policy's rules go to.
func (s *RBACSet) target(p *Policy) *rbacv3.RBAC {
	var slot **rbacv3.RBAC
	switch {
	case p.Action == ActionCustom:
		r := s.Custom[p.Provider]
		slot = &r
		defer func() { s.Custom[p.Provider] = *slot }()
	case p.Action == ActionDeny && p.DryRun:
		slot = &s.DenyShadow
	case p.Action == ActionDeny:
		slot = &s.Deny
	case p.Action == ActionAllow && p.DryRun:
		slot = &s.AllowShadow
	case p.Action == ActionAllow:
		slot = &s.Allow
	case p.DryRun:
		slot = &s.AuditShadow
	default:
		slot = &s.Audit
	}
	if *slot == nil {
		*slot = &rbacv3.RBAC{Action: rbacAction(p.Action), Policies: map[string]*rbacv3.Policy{}}
	}
	return *slot
}

func rbacAction(a Action) rbacv3.RBAC_Action {
	switch a {
	case ActionAllow:
		return rbacv3.RBAC_ALLOW
	case ActionAudit:
		return rbacv3.RBAC_LOG
	}
	return rbacv3.RBAC_DENY
}

// rbacPolicy renders one rule: source-side conditions become principals,
// destination-side ones permissions, exactly as Istio splits them.
func rbacPolicy(r Rule) (*rbacv3.Policy, error) {
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	if r.From != nil {
		id, err := orGroupsID(r.From)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if r.To != nil {
		perm, err := orGroupsPerm(r.To)
		if err != nil {
			return nil, err
		}
		perms = append(perms, perm)
	}
	for _, m := range r.When {
		if isPermission(m.Attr) {
			p, err := permission(m)
			if err != nil {
				return nil, err
			}
			perms = append(perms, p)
			continue
		}
		id, err := principal(m)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{andPerms(perms)}, Principals: []*rbacv3.Principal{andIDs(ids)}}, nil
}

func isPermission(a Attr) bool {
	switch a {
	case AttrHost, AttrMethod, AttrPath, AttrDestIP, AttrDestPort, AttrSNI:
		return true
	}
	return false
}

func orGroupsID(groups [][]Match) (*rbacv3.Principal, error) {
	var alts []*rbacv3.Principal
	for _, g := range groups {
		var ids []*rbacv3.Principal
		for _, m := range g {
			if isPermission(m.Attr) {
				return nil, fmt.Errorf("%s: %s is not a source attribute", m.Field, m.Attr)
			}
			id, err := principal(m)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		alts = append(alts, andIDs(ids))
	}
	return orIDs(alts), nil
}

func orGroupsPerm(groups [][]Match) (*rbacv3.Permission, error) {
	var alts []*rbacv3.Permission
	for _, g := range groups {
		var perms []*rbacv3.Permission
		for _, m := range g {
			if !isPermission(m.Attr) {
				return nil, fmt.Errorf("%s: %s is not an operation attribute", m.Field, m.Attr)
			}
			p, err := permission(m)
			if err != nil {
				return nil, err
			}
			perms = append(perms, p)
		}
		alts = append(alts, andPerms(perms))
	}
	return orPerms(alts), nil
}

func andIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ids) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func orIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func andPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

// principal renders one source-side match: values OR, Not negated.
func principal(m Match) (*rbacv3.Principal, error) {
	ids := make([]*rbacv3.Principal, 0, len(m.Values))
	for _, v := range m.Values {
		id, err := principalValue(m, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Field, err)
		}
		ids = append(ids, id)
	}
	id := orIDs(ids)
	if m.Not {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: id}}, nil
	}
	return id, nil
}

func principalValue(m Match, v string) (*rbacv3.Principal, error) {
	switch m.Attr {
	case AttrPrincipal:
		return authenticated(spiffeMatcher(v)), nil
	case AttrNamespace:
		return authenticated(regexMatcher(`^spiffe://[^/]+/ns/` + segmentRegex(v) + `/sa/[^/]+$`)), nil
	case AttrServiceAccount:
		ns, sa, _ := strings.Cut(v, "/")
		return authenticated(regexMatcher(`^spiffe://[^/]+/ns/` + regexp.QuoteMeta(ns) + `/sa/` + regexp.QuoteMeta(sa) + `$`)), nil
	case AttrSourceIP:
		c, err := cidr(v)
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, err
	case AttrRemoteIP:
		c, err := cidr(v)
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, err
	case AttrHeader:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatcher(m.Key[0], v, false)}}, nil
	case AttrRequestPrincipal:
		return requestPrincipal(v)
	case AttrAudience:
		return claimPrincipal([]string{"aud"}, v), nil
	case AttrPresenter:
		return metadataPrincipal([]string{"azp"}, valueString(stringMatcher(v, false))), nil
	case AttrClaim:
		return claimPrincipal(m.Key, v), nil
	}
	return nil, fmt.Errorf("attribute %s has no RBAC principal form", m.Attr)
}

func authenticated(sm *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}

// spiffeMatcher matches a URI SAN against an Istio principal pattern; "*"
// means any authenticated peer with a non-empty identity.
func spiffeMatcher(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatcher(".+")
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + v}}
}

// segmentRegex turns a namespace pattern into a regex over one path
// segment.
func segmentRegex(v string) string {
	switch {
	case v == "*":
		return `[^/]+`
	case strings.HasSuffix(v, "*"):
		return regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + `[^/]*`
	case strings.HasPrefix(v, "*"):
		return `[^/]*` + regexp.QuoteMeta(strings.TrimPrefix(v, "*"))
	}
	return regexp.QuoteMeta(v)
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// stringMatcher renders an Istio string pattern; "*" is any non-empty
// value (".+"), as Istio renders it.
func stringMatcher(v string, ignoreCase bool) *matcherv3.StringMatcher {
	var sm *matcherv3.StringMatcher
	switch {
	case v == "*":
		sm = regexMatcher(".+")
	case strings.HasSuffix(v, "*"):
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	default:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
	}
	sm.IgnoreCase = ignoreCase && v != "*"
	return sm
}

func headerMatcher(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	if v == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(v, ignoreCase)}}
}

func cidr(v string) (*corev3.CidrRange, error) {
	p, err := netip.ParsePrefix(toCIDR(v))
	if err != nil {
		return nil, fmt.Errorf("invalid CIDR %q: %w", v, err)
	}
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}, nil
}

// requestPrincipal matches <iss>/<sub> against the jwt_authn payload,
// which holds iss and sub separately: the value is split at its last '/'.
// "*" needs a subject; "<iss>/*" an issuer and any subject; "*/<sub>" a
// subject from any issuer. Other partial patterns cannot be split
// faithfully and are rejected.
func requestPrincipal(v string) (*rbacv3.Principal, error) {
	present := valuePresent()
	if v == "*" {
		return metadataPrincipal([]string{"sub"}, present), nil
	}
	i := strings.LastIndexByte(v, '/')
	if i < 0 {
		return nil, fmt.Errorf("request principal %q: want <issuer>/<subject>", v)
	}
	iss, sub := v[:i], v[i+1:]
	var issM, subM *matcherv3.ValueMatcher
	switch {
	case strings.Contains(iss, "*") && iss != "*":
		return nil, fmt.Errorf("request principal %q: issuer wildcards cannot be expressed in RBAC", v)
	case iss == "*":
		issM = present
	default:
		issM = valueString(stringMatcher(iss, false))
	}
	switch {
	case sub == "*":
		subM = present
	case strings.Contains(sub, "*"):
		return nil, fmt.Errorf("request principal %q: partial subject wildcards cannot be expressed in RBAC", v)
	default:
		subM = valueString(stringMatcher(sub, false))
	}
	return andIDs([]*rbacv3.Principal{metadataPrincipal([]string{"iss"}, issM), metadataPrincipal([]string{"sub"}, subM)}), nil
}

// claimPrincipal matches a claim that is a string or a list of strings.
func claimPrincipal(path []string, v string) *rbacv3.Principal {
	sm := stringMatcher(v, false)
	return orIDs([]*rbacv3.Principal{
		metadataPrincipal(path, valueString(sm)),
		metadataPrincipal(path, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
			MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: valueString(sm)}}}}),
	})
}

func valueString(sm *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sm}}
}

func valuePresent() *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
}

// metadataPrincipal matches jwt_authn's payload metadata at path.
func metadataPrincipal(path []string, vm *matcherv3.ValueMatcher) *rbacv3.Principal {
	segs := make([]*matcherv3.MetadataMatcher_PathSegment, 0, len(path)+1)
	for _, p := range append([]string{DefaultJWTPayloadKey}, path...) {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: JWTFilter, Path: segs, Value: vm}}}
}

// permission renders one destination-side match.
func permission(m Match) (*rbacv3.Permission, error) {
	ps := make([]*rbacv3.Permission, 0, len(m.Values))
	for _, v := range m.Values {
		p, err := permissionValue(m, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Field, err)
		}
		ps = append(ps, p)
	}
	p := orPerms(ps)
	if m.Not {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}, nil
	}
	return p, nil
}

func permissionValue(m Match, v string) (*rbacv3.Permission, error) {
	switch m.Attr {
	case AttrHost:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(":authority", v, true)}}, nil
	case AttrMethod:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(":method", v, false)}}, nil
	case AttrPath:
		return pathPermission(v)
	case AttrDestIP:
		c, err := cidr(v)
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: c}}, err
	case AttrDestPort:
		n, err := strconv.ParseUint(v, 10, 32)
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, err
	case AttrSNI:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: stringMatcher(v, false)}}, nil
	}
	return nil, fmt.Errorf("attribute %s has no RBAC permission form", m.Attr)
}

func pathPermission(v string) (*rbacv3.Permission, error) {
	if !schema.IsPathTemplate(v) {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: stringMatcher(v, false)}}}}, nil
	}
	cfg, err := anypb.New(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: v})
	if err != nil {
		return nil, fmt.Errorf("path template %q: %w", v, err)
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
		Name: "envoy.path.match.uri_template.uri_template_matcher", TypedConfig: cfg}}}, nil
}
