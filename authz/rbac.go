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
	case AttrTrustDomain:
		return authenticated(regexMatcher(`^spiffe://` + trustDomainRegex(v) + `/.*$`)), nil
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

// spiffeMatcher matches a URI SAN against an Istio principal pattern
// (classify); "*" means any authenticated peer with a non-empty identity.
func spiffeMatcher(v string) *matcherv3.StringMatcher {
	switch kind, lit := classify(v); kind {
	case patAny:
		return regexMatcher(".+")
	case patPrefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + lit}}
	case patSuffix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: lit}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + v}}
}

// segmentRegex turns a namespace pattern into a regex over one path
// segment: every '*' is a wildcard, as in Istio's namespace regex, but
// bounded to the segment; "*" alone is any non-empty namespace.
func segmentRegex(v string) string {
	if v == "*" {
		return `[^/]+`
	}
	return globRegex(v, `[^/]*`)
}

// trustDomainRegex turns a trust-domain pattern (validated: at most one
// '*', at an end) into a regex over the SPIFFE ID's authority.
func trustDomainRegex(v string) string {
	switch kind, lit := classify(v); kind {
	case patAny:
		return `[^/]+`
	case patPrefix:
		return regexp.QuoteMeta(lit) + `[^/]*`
	case patSuffix:
		return `[^/]*` + regexp.QuoteMeta(lit)
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
	switch kind, lit := classify(v); kind {
	case patAny:
		sm = regexMatcher(".+")
	case patPrefix:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: lit}}
	case patSuffix:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: lit}}
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

// requestPrincipal matches request.auth.principal, which Istio defines as
// the string "<iss>/<sub>" of the verified JWT, against jwt_authn's
// payload metadata, which holds iss and sub apart. Since principal ==
// iss + "/" + sub, a pattern is the OR, over every "/" of it where the
// issuer could end, of a matcher on iss and one on sub; a subject or an
// issuer holding "/" (https://issuer.example.com/a/b) is thereby matched
// exactly as the whole string is, with no knowledge of the issuers. Like
// Istio's string matching: "*" is any non-empty principal, "<p>*" a
// prefix, "*<s>" a suffix. No alternative matches a request without a
// token.
func requestPrincipal(v string) (*rbacv3.Principal, error) {
	var alts []*rbacv3.Principal
	switch kind, lit := classify(v); kind {
	case patAny:
		alts = append(alts, claimNonEmpty("iss"), claimNonEmpty("sub"))
	case patPrefix:
		p := lit
		alts = append(alts, claimMatch("iss", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}))
		for _, k := range slashes(p) {
			// The issuer ends at this "/": it is p[:k], the subject starts
			// with p[k+1:].
			alts = append(alts, principalSplit(claimEquals("iss", p[:k]), p[:k] == "", claimStarts("sub", p[k+1:]), p[k+1:] == ""))
		}
	case patSuffix:
		x := lit
		alts = append(alts, claimMatch("sub", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: x}}))
		for _, k := range slashes(x) {
			// The subject is x[k+1:], the issuer ends with x[:k].
			alts = append(alts, principalSplit(claimEnds("iss", x[:k]), x[:k] == "", claimEquals("sub", x[k+1:]), x[k+1:] == ""))
		}
	default:
		for _, k := range slashes(v) {
			if k == 0 && k == len(v)-1 {
				continue // "/": the empty principal, which no request has
			}
			alts = append(alts, andIDs([]*rbacv3.Principal{claimEquals("iss", v[:k]), claimEquals("sub", v[k+1:])}))
		}
	}
	if len(alts) == 0 {
		// No "/": no "<iss>/<sub>" equals it. Match nothing (a DENY or
		// ALLOW on it applies to no request), as Istio's string match does.
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: andIDs(nil)}}, nil
	}
	return orIDs(alts), nil
}

// slashes lists the indexes of "/" in s.
func slashes(s string) []int {
	var out []int
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, i)
		}
	}
	return out
}

// principalSplit is issuer ∧ subject for one split point of a wildcard
// pattern. A side whose matcher is vacuous (an empty prefix or suffix:
// nil) becomes "non-empty" when the other side may be empty, so that a
// request without a token (empty principal) never matches.
func principalSplit(iss *rbacv3.Principal, issEmpty bool, sub *rbacv3.Principal, subEmpty bool) *rbacv3.Principal {
	if iss == nil {
		iss = claimNonEmptyIf("iss", subEmpty)
	}
	if sub == nil {
		sub = claimNonEmptyIf("sub", issEmpty)
	}
	var ids []*rbacv3.Principal
	for _, id := range []*rbacv3.Principal{iss, sub} {
		if id != nil {
			ids = append(ids, id)
		}
	}
	return andIDs(ids)
}

func claimNonEmptyIf(name string, cond bool) *rbacv3.Principal {
	if cond {
		return claimNonEmpty(name)
	}
	return nil
}

// claimMatch matches the string claim name of the JWT payload.
func claimMatch(name string, sm *matcherv3.StringMatcher) *rbacv3.Principal {
	return metadataPrincipal([]string{name}, valueString(sm))
}

func claimNonEmpty(name string) *rbacv3.Principal { return claimMatch(name, regexMatcher(".+")) }

// claimEquals matches a claim equal to v; "" means absent or empty (as
// request.auth.principal is built from a missing claim).
func claimEquals(name, v string) *rbacv3.Principal {
	if v == "" {
		absent := &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: metadataPrincipal([]string{name}, valuePresent())}}
		return orIDs([]*rbacv3.Principal{absent, claimMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ""}})})
	}
	return claimMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}})
}

// claimStarts and claimEnds match a prefix or suffix; nil (no condition)
// for an empty one.
func claimStarts(name, p string) *rbacv3.Principal {
	if p == "" {
		return nil
	}
	return claimMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}})
}

func claimEnds(name, x string) *rbacv3.Principal {
	if x == "" {
		return nil
	}
	return claimMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: x}})
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
