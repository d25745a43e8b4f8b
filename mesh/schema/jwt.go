package schema

import (
	"encoding/json"
	"fmt"
	"net/url"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func validateRequestAuthentication(c *mesh.Config, e *errs) {
	in, ok := c.Spec.(*security.RequestAuthentication)
	if !ok {
		wrongType(e, c, "*v1beta1.RequestAuthentication")
		return
	}
	checkTargeting(e, in.GetSelector(), in.GetTargetRef(), in.GetTargetRefs())
	for i, r := range in.GetJwtRules() {
		p := idx("spec.jwtRules", i)
		if r == nil {
			e.add(p, "jwt rule must not be null")
			continue
		}
		checkJWTRule(e, p, r)
	}
}

func checkJWTRule(e *errs, p string, r *security.JWTRule) {
	if r.GetIssuer() == "" && r.GetJwksUri() == "" {
		// As Istio: without an issuer the token's "iss" is not checked and
		// the keys come from jwksUri, so one of the two is needed.
		e.add(p+".issuer", "issuer or jwksUri must be set")
	}
	for i, a := range r.GetAudiences() {
		if a == "" {
			e.add(idx(p+".audiences", i), "audience must be a non-empty string")
		}
	}
	if r.GetJwksUri() != "" && r.GetJwks() != "" {
		e.add(p, "only one of jwks or jwksUri can be set")
	}
	if u := r.GetJwksUri(); u != "" {
		checkErr(e, p+".jwksUri", JWKSURI(u))
	}
	if j := r.GetJwks(); j != "" {
		checkErr(e, p+".jwks", JWKS(j))
		if JWKS(j) == nil && jwksKeys(j) == 0 {
			// Istio accepts an empty set; every token is then rejected.
			e.warnCode(CodeStricter, p+".jwks", "jwks has no keys: every token for this rule is rejected")
		}
	}
	for i, h := range r.GetFromHeaders() {
		if h.GetName() == "" {
			e.add(idx(p+".fromHeaders", i)+".name", "header name must be a non-empty string")
		}
	}
	for i, q := range r.GetFromParams() {
		if q == "" {
			e.add(idx(p+".fromParams", i), "query parameter name must be a non-empty string")
		}
	}
	for i, ck := range r.GetFromCookies() {
		if ck == "" {
			e.add(idx(p+".fromCookies", i), "cookie name must be a non-empty string")
		}
	}
	for i, ch := range r.GetOutputClaimToHeaders() {
		cp := idx(p+".outputClaimToHeaders", i)
		if ch.GetClaim() == "" {
			e.add(cp+".claim", "claim must be a non-empty string")
		}
		checkErr(e, cp+".header", HeaderName(ch.GetHeader()))
	}
	for i, c := range r.GetSpaceDelimitedClaims() {
		if c == "" {
			e.add(idx(p+".spaceDelimitedClaims", i), "claim name must be a non-empty string")
		}
	}
	checkDuration(e, p+".timeout", r.GetTimeout())
}

// maxJWKSURI is the CRD's length limit for jwksUri.
const maxJWKSURI = 2048

// JWKSURI checks a JWKS URL: http or https with a host.
func JWKSURI(s string) error {
	if len(s) > maxJWKSURI {
		return fmt.Errorf("jwksUri is too long (%d bytes, max %d)", len(s), maxJWKSURI)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid jwksUri %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("jwksUri %q must have scheme http:// or https://", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("jwksUri %q has no host", s)
	}
	if p := u.Port(); p != "" {
		if err := portString(p); err != nil {
			return fmt.Errorf("jwksUri %q: %v", s, err)
		}
	}
	return nil
}

// JWKS checks an inline JSON Web Key Set: {"keys": [{"kty": ...}, ...]}.
// Key material is checked where it is used (authn); here only the shape,
// so a YAML quoting mistake is caught at load time.
func JWKS(s string) error {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return fmt.Errorf("jwks is not a JSON Web Key Set: %v", err)
	}
	for i, k := range set.Keys {
		if kty, _ := k["kty"].(string); kty == "" {
			return fmt.Errorf("jwks key %d has no \"kty\"", i)
		}
	}
	return nil
}

// jwksKeys counts the keys of a key set JWKS accepted.
func jwksKeys(s string) int {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	_ = json.Unmarshal([]byte(s), &set)
	return len(set.Keys)
}
