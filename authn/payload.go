package authn

import (
	"strings"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// PayloadMetadata is the payload jwt_authn puts in dynamic metadata for a
// successful Authentication under cfg: the token's claims, with the
// provider's normalize_payload_in_metadata.space_delimited_claims (top
// level, string values) split on spaces into lists, as Envoy does. It is
// what authorization sees as request.auth.claims. nil when a carries no
// claims (no token).
func PayloadMetadata(cfg *jwtv3.JwtAuthentication, a *Authentication) map[string]any {
	if a == nil || a.Claims == nil {
		return nil
	}
	split := cfg.GetProviders()[a.Provider].GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims()
	if len(split) == 0 {
		return a.Claims
	}
	out := make(map[string]any, len(a.Claims))
	for k, v := range a.Claims {
		out[k] = v
	}
	for _, c := range split {
		s, ok := out[c].(string)
		if !ok {
			continue
		}
		fields := strings.Fields(s)
		list := make([]any, len(fields))
		for i, f := range fields {
			list[i] = f
		}
		out[c] = list
	}
	return out
}
