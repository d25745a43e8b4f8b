package simulate

import (
	"fmt"
	"slices"
	"strings"

	jwt "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// jwtNamespace is jwt_authn's dynamic-metadata namespace.
const jwtNamespace = "envoy.filters.http.jwt_authn"

// jwtFailure says why a requirement failed; ok is the zero value.
type jwtFailure int

const (
	jwtOK jwtFailure = iota
	jwtMissing
	jwtInvalid // bad token, or an issuer no provider in the requirement trusts
	jwtAudience
)

func (f jwtFailure) String() string {
	return [...]string{"ok", "Jwt is missing", "Jwt verification fails", "Audiences in Jwt are not allowed"}[f]
}

// status is the HTTP status jwt_authn returns for the failure.
func (f jwtFailure) status() int {
	if f == jwtAudience {
		return 403
	}
	return 401
}

// jwtEval evaluates requirements for one request's token.
type jwtEval struct {
	cfg   *jwt.JwtAuthentication
	token JWT
	// verified are the providers whose verification succeeded, in order;
	// their payloads go to dynamic metadata.
	verified []string
}

// requirement evaluates a JwtRequirement as jwt_authn does.
func (e *jwtEval) requirement(r *jwt.JwtRequirement) jwtFailure {
	switch t := r.GetRequiresType().(type) {
	case nil:
		return jwtOK
	case *jwt.JwtRequirement_ProviderName:
		return e.provider(t.ProviderName, nil)
	case *jwt.JwtRequirement_ProviderAndAudiences:
		return e.provider(t.ProviderAndAudiences.GetProviderName(), t.ProviderAndAudiences.GetAudiences())
	case *jwt.JwtRequirement_RequiresAny:
		return e.any(t.RequiresAny.GetRequirements())
	case *jwt.JwtRequirement_RequiresAll:
		for _, c := range t.RequiresAll.GetRequirements() {
			if f := e.requirement(c); f != jwtOK {
				return f
			}
		}
		return jwtOK
	case *jwt.JwtRequirement_AllowMissing:
		return e.allowMissing(false)
	case *jwt.JwtRequirement_AllowMissingOrFailed:
		return e.allowMissing(true)
	}
	return jwtInvalid
}

// any succeeds when one alternative does; otherwise it reports the most
// telling failure (a present-but-bad token over a missing one).
func (e *jwtEval) any(reqs []*jwt.JwtRequirement) jwtFailure {
	worst := jwtMissing
	for _, c := range reqs {
		f := e.requirement(c)
		if f == jwtOK {
			return jwtOK
		}
		worst = max(worst, f)
	}
	return worst
}

// allowMissing: a missing token passes; a present one must verify for
// some provider unless failures are allowed too.
func (e *jwtEval) allowMissing(orFailed bool) jwtFailure {
	if e.token.State == NoToken {
		return jwtOK
	}
	for _, name := range sortedKeys(e.cfg.GetProviders()) {
		if e.provider(name, nil) == jwtOK {
			return jwtOK
		}
	}
	if orFailed {
		return jwtOK
	}
	return jwtInvalid
}

// provider verifies the token with one provider.
func (e *jwtEval) provider(name string, audiences []string) jwtFailure {
	p, ok := e.cfg.GetProviders()[name]
	switch {
	case !ok:
		return jwtInvalid
	case e.token.State == NoToken:
		return jwtMissing
	case e.token.State == InvalidToken:
		return jwtInvalid
	case p.GetIssuer() != "" && p.GetIssuer() != e.token.Issuer:
		return jwtInvalid
	}
	if len(audiences) == 0 {
		audiences = p.GetAudiences()
	}
	if len(audiences) > 0 && !audienceAllowed(e.token.Claims["aud"], audiences) {
		return jwtAudience
	}
	if !slices.Contains(e.verified, name) {
		e.verified = append(e.verified, name)
	}
	return jwtOK
}

func audienceAllowed(aud any, allowed []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(allowed, a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && slices.Contains(allowed, s) {
				return true
			}
		}
	case []string:
		for _, s := range a {
			if slices.Contains(allowed, s) {
				return true
			}
		}
	}
	return false
}

// writePayloads puts each verifying provider's payload into dynamic
// metadata under its payload_in_metadata key.
func (e *jwtEval) writePayloads(md metadata) {
	for _, name := range e.verified {
		p := e.cfg.GetProviders()[name]
		if p.GetPayloadInMetadata() == "" {
			continue
		}
		md.set(jwtNamespace, p.GetPayloadInMetadata(), payload(e.token, p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims()))
	}
}

// payload is the token's claims as metadata values: iss filled in, the
// listed space-delimited claims split into lists.
func payload(t JWT, spaceDelimited []string) map[string]any {
	out := map[string]any{}
	for k, v := range t.Claims {
		out[k] = normalizeValue(v)
	}
	if _, ok := out["iss"]; !ok && t.Issuer != "" {
		out["iss"] = t.Issuer
	}
	for _, c := range spaceDelimited {
		if s, ok := out[c].(string); ok {
			var list []any
			for _, f := range strings.Fields(s) {
				list = append(list, f)
			}
			out[c] = list
		}
	}
	return out
}

// normalizeValue turns Go values into the metadata value forms
// (float64, string, bool, []any, map[string]any).
func normalizeValue(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalizeValue(e)
		}
		return out
	}
	return v
}

// findRequirement picks the requirement for a request: a per-route
// requirement_name, else the first rule whose match holds.
func findRequirement(cfg *jwt.JwtAuthentication, perRoute *jwt.PerRouteConfig, r routeRequest) (*jwt.JwtRequirement, bool) {
	if name := perRoute.GetRequirementName(); name != "" {
		req, ok := cfg.GetRequirementMap()[name]
		return req, ok
	}
	for _, rule := range cfg.GetRules() {
		if !routeMatches(rule.GetMatch(), r) {
			continue
		}
		if n := rule.GetRequirementName(); n != "" {
			req, ok := cfg.GetRequirementMap()[n]
			return req, ok
		}
		return rule.GetRequires(), true
	}
	return nil, false
}

// sanitizeJWTHeaders removes the headers providers write
// (forward_payload_header, claim_to_headers), as Envoy's verifier does
// before it looks for tokens; a request no requirement applies to, or a
// CORS preflight jwt_authn bypasses, keeps them.
func sanitizeJWTHeaders(cfg *jwt.JwtAuthentication, h map[string]string) {
	for _, p := range cfg.GetProviders() {
		if n := p.GetForwardPayloadHeader(); n != "" {
			delete(h, strings.ToLower(n))
		}
		for _, c := range p.GetClaimToHeaders() {
			delete(h, strings.ToLower(c.GetHeaderName()))
		}
	}
}

// writeHeaders adds the verified providers' output headers: the payload
// (its claims, rendered as "<payload>") and string, number and boolean
// claims.
func (e *jwtEval) writeHeaders(h map[string]string) {
	for _, name := range e.verified {
		p := e.cfg.GetProviders()[name]
		if n := p.GetForwardPayloadHeader(); n != "" {
			h[strings.ToLower(n)] = "<payload>"
		}
		for _, c := range p.GetClaimToHeaders() {
			switch v := e.token.Claims[c.GetClaimName()].(type) {
			case string:
				h[strings.ToLower(c.GetHeaderName())] = v
			case bool, float64, int, int64:
				h[strings.ToLower(c.GetHeaderName())] = fmt.Sprint(v)
			}
		}
	}
}
