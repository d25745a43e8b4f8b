package authn

import (
	"fmt"
	"sort"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// jwt_authn names shared with the authorisation side: verified payloads
// land in dynamic metadata[JWTFilterName][JWTPayloadKey], which ext_authz
// (metadata_context_namespaces) and RBAC read.
const (
	JWTFilterName = "envoy.filters.http.jwt_authn"
	JWTPayloadKey = "payload"
)

// Gateway API names a targetRef may use.
const (
	GatewayGroup     = "gateway.networking.k8s.io"
	GatewayKind      = "Gateway"
	GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
)

// defaultSpaceDelimitedClaims are always split on spaces, as in Istio.
var defaultSpaceDelimitedClaims = []string{"permission", "scope"}

// KeySets hands the translator key sets the control plane already
// fetched (authn/jwks.Resolver implements it). It must not block.
type KeySets interface {
	// JWKS returns the normalized key set for issuer, fetched from jwksURI
	// or, when jwksURI is empty, found by OIDC discovery from the issuer;
	// ok is false while no key set is available.
	JWKS(issuer, jwksURI string) (jwks string, ok bool)
}

// RequestAuthsFor returns the RequestAuthentications that apply to a
// proxy, sorted by namespace and name: those in the root namespace and
// in the proxy's namespace whose selector matches (no selector: all), and
// for gateways those whose targetRefs name the proxy's Gateway.
func RequestAuthsFor(snap *mesh.Snapshot, proxy *mesh.Proxy) []*mesh.Config {
	root := snap.Mesh().RootNamespace
	cands := snap.InNamespace(mesh.KindRequestAuthentication, proxy.Namespace)
	if proxy.Namespace != root {
		cands = append(append([]*mesh.Config(nil), snap.InNamespace(mesh.KindRequestAuthentication, root)...), cands...)
	}
	var out []*mesh.Config
	for _, c := range cands {
		if requestAuthApplies(c, proxy) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

func requestAuthApplies(c *mesh.Config, proxy *mesh.Proxy) bool {
	ra, _ := c.Spec.(*security.RequestAuthentication)
	refs := targetRefs(ra)
	if len(refs) == 0 {
		sel, _ := mesh.SelectorOf(ra)
		return sel.Matches(proxy.Labels)
	}
	for _, r := range refs {
		if gatewayRef(r) && c.Namespace == proxy.Namespace && proxy.Type == mesh.ProxyRouter &&
			(r.GetNamespace() == "" || r.GetNamespace() == c.Namespace) && proxy.Labels[GatewayNameLabel] == r.GetName() {
			return true
		}
	}
	return false
}

func targetRefs(ra *security.RequestAuthentication) []*typev1beta1.PolicyTargetReference {
	refs := ra.GetTargetRefs()
	if r := ra.GetTargetRef(); r != nil {
		refs = append([]*typev1beta1.PolicyTargetReference{r}, refs...)
	}
	return refs
}

func gatewayRef(r *typev1beta1.PolicyTargetReference) bool {
	return r.GetKind() == GatewayKind && (r.GetGroup() == GatewayGroup || r.GetGroup() == "")
}

// jwtRule is one rule with where it came from.
type jwtRule struct {
	src  mesh.Key
	idx  int
	rule *security.JWTRule
}

func (r jwtRule) providerName() string {
	return fmt.Sprintf("ns[%s]-requestauthentication[%s]-rule[%d]", r.src.Namespace, r.src.Name, r.idx)
}

// JWTAuthn builds the jwt_authn filter config for the RequestAuthentications
// that apply to a proxy (RequestAuthsFor): one provider per rule, keys
// inlined from keys (or the rule's own jwks), payload in metadata,
// CORS preflight bypassed, and Istio's requirement: a present token must
// be valid for some provider, a missing token passes (an
// AuthorizationPolicy with requestPrincipals is what demands a token) —
// unless a rule says presence: REQUIRED, whose provider must then also
// find a valid token, whatever the other rules accept.
// It returns nil when no rule applies. Unavailable or invalid keys are
// replaced by FailClosedJWKS and reported.
func JWTAuthn(policies []*mesh.Config, keys KeySets) (*jwtv3.JwtAuthentication, []Finding) {
	rules := collectRules(policies)
	if len(rules) == 0 {
		return nil, nil
	}
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var findings []Finding
	var inner, outer, required []*jwtv3.JwtRequirement
	for _, r := range rules {
		p, f := provider(r, keys)
		findings = append(findings, f...)
		name := r.providerName()
		cfg.Providers[name] = p
		inner = append(inner, anyOf(providerReq(name), &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}))
		outer = append(outer, providerReq(name))
		if r.rule.GetPresence() == security.JWTRule_REQUIRED {
			required = append(required, providerReq(name))
		}
	}
	req := inner[0]
	if len(inner) > 1 {
		// OR of {P1 … Pn, AND of {P1|missing … Pn|missing}}: the AND makes
		// every present token valid; the plain ORs admit providers that
		// share a token location (where the AND alone would always fail).
		all := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner}}}
		req = anyOf(append(outer, all)...)
	}
	if len(required) > 0 {
		// AND of {the tree above, every REQUIRED provider}: a missing or
		// invalid required token is rejected (401) even when another
		// rule's token is valid.
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: append([]*jwtv3.JwtRequirement{req}, required...)}}}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return cfg, findings
}

func collectRules(policies []*mesh.Config) []jwtRule {
	var rules []jwtRule
	for _, c := range policies {
		ra, _ := c.Spec.(*security.RequestAuthentication)
		for i, r := range ra.GetJwtRules() {
			if r != nil {
				rules = append(rules, jwtRule{src: c.Key(), idx: i, rule: r})
			}
		}
	}
	// Istio orders providers by issuer; the source breaks ties.
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].rule.GetIssuer() < rules[j].rule.GetIssuer() })
	return rules
}

func providerReq(name string) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
}

func anyOf(reqs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}
}

func provider(r jwtRule, keys KeySets) (*jwtv3.JwtProvider, []Finding) {
	in := r.rule
	p := &jwtv3.JwtProvider{
		Issuer:                     in.GetIssuer(),
		Audiences:                  in.GetAudiences(),
		Forward:                    in.GetForwardOriginalToken(),
		ForwardPayloadHeader:       in.GetOutputPayloadToHeader(),
		PayloadInMetadata:          JWTPayloadKey,
		FromParams:                 in.GetFromParams(),
		FromCookies:                in.GetFromCookies(),
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: spaceDelimited(in.GetSpaceDelimitedClaims())},
	}
	for _, h := range in.GetFromHeaders() {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	for _, ch := range in.GetOutputClaimToHeaders() {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: ch.GetHeader(), ClaimName: ch.GetClaim()})
	}
	jwks, f := ruleKeys(r, keys)
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: inlineString(jwks)}
	return p, f
}

// ruleKeys picks the key set to inline for a rule, failing closed.
func ruleKeys(r jwtRule, keys KeySets) (string, []Finding) {
	in := r.rule
	if in.GetJwks() != "" {
		n, err := NormalizeJWKS([]byte(in.GetJwks()))
		if err != nil {
			return FailClosedJWKS, []Finding{{Object: r.src, Severity: SeverityError, Reason: ReasonJWKSInvalid,
				Message: fmt.Sprintf("jwtRules[%d] (%s): inline jwks: %v; every token for this rule is rejected", r.idx, RuleLabel(in), err)}}
		}
		return n.JSON, nil
	}
	if keys != nil {
		if s, ok := keys.JWKS(in.GetIssuer(), in.GetJwksUri()); ok {
			return s, nil
		}
	}
	return FailClosedJWKS, []Finding{{Object: r.src, Severity: SeverityError, Reason: ReasonJWKSUnavailable,
		Message: fmt.Sprintf("jwtRules[%d] (%s): no keys fetched yet from %s; every token for this rule is rejected until they are", r.idx, RuleLabel(in), keySource(in))}}
}

// RuleLabel names a JWT rule in messages: by its issuer, or, for a rule
// without one (any issuer, keys from jwksUri), by its jwksUri.
func RuleLabel(in *security.JWTRule) string {
	if in.GetIssuer() == "" {
		return fmt.Sprintf("any issuer, keys from %s", in.GetJwksUri())
	}
	return fmt.Sprintf("issuer %q", in.GetIssuer())
}

func keySource(in *security.JWTRule) string {
	if in.GetJwksUri() != "" {
		return in.GetJwksUri()
	}
	return "OIDC discovery at " + DiscoveryURL(in.GetIssuer())
}

// DiscoveryURL is where an issuer's OpenID configuration lives.
func DiscoveryURL(issuer string) string {
	for len(issuer) > 0 && issuer[len(issuer)-1] == '/' {
		issuer = issuer[:len(issuer)-1]
	}
	return issuer + "/.well-known/openid-configuration"
}

func spaceDelimited(extra []string) []string {
	set := map[string]bool{}
	for _, c := range append(append([]string(nil), defaultSpaceDelimitedClaims...), extra...) {
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// JWTFilter wraps a jwt_authn config as an HTTP filter for the HCM; it
// goes before ext_authz/RBAC so they see verified claims. nil in, nil out.
func JWTFilter(cfg *jwtv3.JwtAuthentication) *hcm.HttpFilter {
	if cfg == nil {
		return nil
	}
	return &hcm.HttpFilter{Name: JWTFilterName, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}
