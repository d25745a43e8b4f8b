package authn

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TokenRequest is the part of an HTTP request jwt_authn reads tokens from.
type TokenRequest struct {
	Method  string
	Headers map[string]string // lower-case names
	Query   url.Values
	Cookies map[string]string
}

// Authentication is a successful JWT evaluation. Claims is nil when no
// token was presented (and none was required).
type Authentication struct {
	Provider  string
	Principal string // <iss>/<sub>
	Claims    map[string]any
}

// Errors from Authenticate, like Envoy's jwt_authn statuses.
var (
	ErrJWTMissing = errors.New("jwt is missing")
	ErrJWTInvalid = errors.New("jwt verification fails")
)

// clockSkew is Envoy's default clock_skew_seconds.
const clockSkew = 60 * time.Second

// Authenticate evaluates a request against a jwt_authn config the way
// Envoy does for the rules Ward emits (single catch-all rule, providers
// with inline keys): token extraction by provider location (default:
// "Authorization: Bearer" and ?access_token=), signature by kid (any key
// when the token has none), issuer, audiences, exp/nbf with 60 s skew, and
// the requirement tree (provider / allow_missing / any / all). It serves
// proxyless gRPC, which has no jwt_authn filter, and the tests that pin
// what the emitted config means. Pure: now is passed in.
func Authenticate(cfg *jwtv3.JwtAuthentication, req TokenRequest, now time.Time) (*Authentication, error) {
	if cfg == nil || len(cfg.GetRules()) == 0 {
		return &Authentication{}, nil
	}
	if cfg.GetBypassCorsPreflight() && isPreflight(req) {
		return &Authentication{}, nil
	}
	e := evaluator{cfg: cfg, req: req, now: now}
	st, a := e.eval(cfg.GetRules()[0].GetRequires())
	switch st {
	case statusOK:
		if a == nil {
			a = &Authentication{}
		}
		return a, nil
	case statusMissing:
		return nil, ErrJWTMissing
	}
	return nil, ErrJWTInvalid
}

func isPreflight(r TokenRequest) bool {
	return r.Method == "OPTIONS" && r.Headers["origin"] != "" && r.Headers["access-control-request-method"] != ""
}

type status int

const (
	statusOK status = iota
	statusMissing
	statusInvalid
)

type evaluator struct {
	cfg *jwtv3.JwtAuthentication
	req TokenRequest
	now time.Time
}

func (e evaluator) eval(r *jwtv3.JwtRequirement) (status, *Authentication) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		return e.provider(t.ProviderName)
	case *jwtv3.JwtRequirement_AllowMissing:
		return statusOK, nil // resolved by the enclosing any-list
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return statusOK, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		return e.any(t.RequiresAny.GetRequirements())
	case *jwtv3.JwtRequirement_RequiresAll:
		var last *Authentication
		for _, c := range t.RequiresAll.GetRequirements() {
			st, a := e.eval(c)
			if st != statusOK {
				return st, nil
			}
			if a != nil {
				last = a
			}
		}
		return statusOK, last
	}
	return statusInvalid, nil
}

// any succeeds with the first successful child; allow_missing succeeds
// only if no sibling saw an invalid token.
func (e evaluator) any(reqs []*jwtv3.JwtRequirement) (status, *Authentication) {
	worst, allowMissing := statusMissing, false
	for _, c := range reqs {
		if _, ok := c.GetRequiresType().(*jwtv3.JwtRequirement_AllowMissing); ok {
			allowMissing = true
			continue
		}
		st, a := e.eval(c)
		if st == statusOK {
			return st, a
		}
		if st == statusInvalid {
			worst = statusInvalid
		}
	}
	if allowMissing && worst == statusMissing {
		return statusOK, nil
	}
	return worst, nil
}

func (e evaluator) provider(name string) (status, *Authentication) {
	p := e.cfg.GetProviders()[name]
	if p == nil {
		return statusInvalid, nil
	}
	toks := extractTokens(p, e.req)
	if len(toks) == 0 {
		return statusMissing, nil
	}
	for _, tok := range toks {
		if claims, err := verifyToken(p, tok, e.now); err == nil {
			iss, _ := claims["iss"].(string)
			sub, _ := claims["sub"].(string)
			return statusOK, &Authentication{Provider: name, Principal: iss + "/" + sub, Claims: claims}
		}
	}
	return statusInvalid, nil
}

func extractTokens(p *jwtv3.JwtProvider, r TokenRequest) []string {
	var out []string
	hdrs := p.GetFromHeaders()
	params := p.GetFromParams()
	if len(hdrs) == 0 && len(params) == 0 && len(p.GetFromCookies()) == 0 {
		hdrs = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		params = []string{"access_token"}
	}
	for _, h := range hdrs {
		v, ok := r.Headers[strings.ToLower(h.GetName())]
		if ok && strings.HasPrefix(v, h.GetValuePrefix()) {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(v, h.GetValuePrefix())))
		}
	}
	for _, q := range params {
		out = append(out, r.Query[q]...)
	}
	for _, c := range p.GetFromCookies() {
		if v, ok := r.Cookies[c]; ok {
			out = append(out, v)
		}
	}
	return out
}

// parsedSets memoises parsed inline JWKS: a config is evaluated for many
// tokens, and parsing its keys dominated a verification. Bounded: when
// full it starts over (configs change rarely; the live set is small).
var parsedSets = struct {
	sync.Mutex
	m map[string]jwk.Set
}{m: map[string]jwk.Set{}}

const maxParsedSets = 256

func providerKeys(p *jwtv3.JwtProvider) (jwk.Set, error) {
	inline := p.GetLocalJwks().GetInlineString()
	parsedSets.Lock()
	set, ok := parsedSets.m[inline]
	parsedSets.Unlock()
	if ok {
		return set, nil
	}
	set, err := jwk.Parse([]byte(inline))
	if err != nil {
		return nil, fmt.Errorf("provider keys: %w", err)
	}
	parsedSets.Lock()
	if len(parsedSets.m) >= maxParsedSets {
		clear(parsedSets.m)
	}
	parsedSets.m[inline] = set
	parsedSets.Unlock()
	return set, nil
}

func verifyToken(p *jwtv3.JwtProvider, tok string, now time.Time) (map[string]any, error) {
	set, err := providerKeys(p)
	if err != nil {
		return nil, err
	}
	t, err := jwt.ParseString(tok,
		jwt.WithKeySet(set, jws.WithRequireKid(false), jws.WithInferAlgorithmFromKey(true)),
		jwt.WithValidate(true), jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })), jwt.WithAcceptableSkew(clockSkew))
	if err != nil {
		return nil, err
	}
	if iss, _ := t.Issuer(); p.GetIssuer() != "" && iss != p.GetIssuer() {
		return nil, fmt.Errorf("issuer %q is not %q", iss, p.GetIssuer())
	}
	if want := p.GetAudiences(); len(want) > 0 {
		aud, _ := t.Audience()
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(want, a) }) {
			return nil, fmt.Errorf("audiences %v not allowed", aud)
		}
	}
	// Claims as JSON types (numbers as float64, aud as written), the shape
	// Envoy puts in dynamic metadata.
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	claims := map[string]any{}
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}
