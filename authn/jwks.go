package authn

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// FailClosedJWKS is inlined for an issuer whose keys are unavailable. It
// is a syntactically valid JWKS holding one RSA public key whose private
// half was discarded when it was generated, so no real token can verify
// against it: every presented token is rejected (Envoy answers 401) while
// token-less requests behave as with any missing token. Istio does the
// same with its "fake JWKS".
const FailClosedJWKS = `{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":"ward-fail-closed-no-key","e":"AQAB","n":"394lytjd330wQEztJ6Ob6BkfhtjPHJZrBQmGiT48Vy-PEVi4dab3XRqEwO8AM8-BeC5ls86SajrVtrAme3NryHaWOwnyImhZYI1A7-EhT_N4_-PEJNnOmchxvYR68LHzkSByT2QFgvSnDxsoZ6W4oXUOBfZd11SMz-GVRzDljkLc8XtSyvqTGfMfam4kRIG_mioZcEPgnhCXexyj53sOQL0ZpsqELBETPvBxdUwxI-ePBj7N7X-0hegx7UaWBw7LkvxBq87LjLHUv1r9ZmhAGsu2jrm1F1bNakykmWmUs6wrboSJJGhwRztFWFsII0wnaDAxTurJ5d0GwOBO_bMOsw"}]}`

// MaxJWKSBytes bounds a key set Ward will parse or inline.
const MaxJWKSBytes = 1 << 20

// NormalizedJWKS is a key set safe to inline into Envoy: public
// signature keys only, re-serialized.
type NormalizedJWKS struct {
	JSON    string
	KeyIDs  []string // sorted; keys without a kid are listed as ""
	Dropped []string // why keys were left out
}

// ErrInvalidJWKS wraps every reason a key set is refused.
var ErrInvalidJWKS = errors.New("invalid jwks")

// NormalizeJWKS parses a JSON Web Key Set and keeps the keys Envoy can
// verify signatures with: RSA, EC on P-256/P-384/P-521 and Ed25519, not
// marked for encryption. Private keys are reduced to their public half
// (never inline a secret), symmetric keys are dropped. A set with no
// usable key is an error, so a bad fetch can never replace good keys or
// make Envoy reject a listener.
func NormalizeJWKS(raw []byte) (NormalizedJWKS, error) {
	if len(raw) > MaxJWKSBytes {
		return NormalizedJWKS{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidJWKS, len(raw), MaxJWKSBytes)
	}
	var shape struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil || shape.Keys == nil {
		return NormalizedJWKS{}, fmt.Errorf("%w: not a JSON object with a \"keys\" array", ErrInvalidJWKS)
	}
	out := NormalizedJWKS{}
	pub := jwk.NewSet()
	for i, kr := range shape.Keys {
		k, err := jwk.ParseKey(kr)
		if err != nil {
			out.Dropped = append(out.Dropped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		p, why := usablePublic(k)
		if p == nil {
			out.Dropped = append(out.Dropped, fmt.Sprintf("key %d: %s", i, why))
			continue
		}
		if err := pub.AddKey(p); err != nil {
			out.Dropped = append(out.Dropped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		kid, _ := p.KeyID()
		out.KeyIDs = append(out.KeyIDs, kid)
	}
	if pub.Len() == 0 {
		return out, fmt.Errorf("%w: no usable signature key (%d dropped)", ErrInvalidJWKS, len(out.Dropped))
	}
	b, err := json.Marshal(pub)
	if err != nil {
		return out, fmt.Errorf("%w: re-encode: %v", ErrInvalidJWKS, err)
	}
	sort.Strings(out.KeyIDs)
	out.JSON = string(b)
	return out, nil
}

func usablePublic(k jwk.Key) (jwk.Key, string) {
	if use, ok := k.KeyUsage(); ok && use != "" && use != "sig" {
		return nil, fmt.Sprintf("use %q is not \"sig\"", use)
	}
	p, err := k.PublicKey()
	if err != nil {
		return nil, fmt.Sprintf("no public key: %v", err)
	}
	switch kt := p.KeyType(); kt {
	case jwa.RSA():
	case jwa.EC():
		ec, ok := p.(jwk.ECDSAPublicKey)
		crv, _ := ec.Crv()
		if !ok || (crv != jwa.P256() && crv != jwa.P384() && crv != jwa.P521()) {
			return nil, fmt.Sprintf("EC curve %v is not supported", crv)
		}
	case jwa.OKP():
		okp, ok := p.(jwk.OKPPublicKey)
		crv, _ := okp.Crv()
		if !ok || crv != jwa.Ed25519() {
			return nil, fmt.Sprintf("OKP curve %v is not supported", crv)
		}
	default:
		return nil, fmt.Sprintf("key type %v is not an asymmetric signature key", kt)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Sprintf("invalid key: %v", err)
	}
	return p, ""
}
