package authn

import (
	"sort"
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// SanitizeFilterName names the filter that removes a client's copies of
// the headers jwt_authn writes.
const SanitizeFilterName = "ward.authn.sanitize_jwt_headers"

// OutputHeaders are the request headers cfg's providers write for a
// verified token (outputPayloadToHeader, outputClaimToHeaders), lower
// case, sorted.
func OutputHeaders(cfg *jwtv3.JwtAuthentication) []string {
	set := map[string]bool{}
	for _, p := range cfg.GetProviders() {
		if n := p.GetForwardPayloadHeader(); n != "" {
			set[strings.ToLower(n)] = true
		}
		for _, c := range p.GetClaimToHeaders() {
			set[strings.ToLower(c.GetHeaderName())] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// SanitizeFilter is a header_mutation filter, placed just before
// jwt_authn, that removes every header cfg's providers write; nil when
// they write none. jwt_authn removes them itself only when it verifies:
// a CORS preflight it bypasses (bypass_cors_preflight) would otherwise
// carry a client's forged "x-jwt-sub: admin" to the application, which
// trusts those headers because the mesh writes them.
func SanitizeFilter(cfg *jwtv3.JwtAuthentication) *hcm.HttpFilter {
	hs := OutputHeaders(cfg)
	if len(hs) == 0 {
		return nil
	}
	m := &headermutationv3.Mutations{}
	for _, h := range hs {
		m.RequestMutations = append(m.RequestMutations, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: h}})
	}
	return &hcm.HttpFilter{Name: SanitizeFilterName, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&headermutationv3.HeaderMutation{Mutations: m})}}
}
