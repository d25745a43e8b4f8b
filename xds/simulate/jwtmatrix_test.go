package simulate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

func requestAuth(ns, selector, extra string) string {
	s := "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt-" + selector + ", namespace: " + ns + "}\nspec:\n"
	if selector != "" {
		s += "  selector: {matchLabels: {app: " + selector + "}}\n"
	}
	return s + "  jwtRules:\n  - issuer: \"https://issuer.example.com\"\n    jwks: '" + issuerJWKS + "'\n" + extra
}

const requireJWT = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
`

// TestJWTMatrix: on every HTTP port protocol of a sidecar, Istio's
// RequestAuthentication semantics hold: an invalid token (bad signature,
// an issuer no rule lists, a wrong audience) is refused even with no
// AuthorizationPolicy; a missing token passes jwt_authn and only an
// AuthorizationPolicy's requestPrincipals refuses it; a
// RequestAuthentication for another workload or namespace does not apply.
func TestJWTMatrix(t *testing.T) {
	good := simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://issuer.example.com", Claims: map[string]any{"sub": "alice", "aud": "web"}}
	otherIssuer := simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://evil.example.com", Claims: map[string]any{"sub": "alice"}}
	wrongAud := simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://issuer.example.com", Claims: map[string]any{"sub": "alice", "aud": "other"}}
	bad := simulate.JWT{State: simulate.InvalidToken}
	type want map[string]bool // token name → allowed
	tokens := map[string]simulate.JWT{"missing": {}, "invalid": bad, "good": good, "other-issuer": otherIssuer, "wrong-aud": wrongAud}
	cases := []struct {
		name string
		docs []string
		want want
	}{
		{"workload rule", []string{requestAuth("foo", "web", "")},
			want{"missing": true, "invalid": false, "good": true, "other-issuer": false, "wrong-aud": true}},
		{"namespace rule with audiences", []string{requestAuth("foo", "", "    audiences: [web]\n")},
			want{"missing": true, "invalid": false, "good": true, "other-issuer": false, "wrong-aud": false}},
		{"mesh rule", []string{requestAuth("istio-system", "", "")},
			want{"missing": true, "invalid": false, "good": true, "other-issuer": false}},
		{"rule plus requestPrincipals", []string{requestAuth("foo", "web", ""), requireJWT},
			want{"missing": false, "invalid": false, "good": true, "other-issuer": false}},
		{"other workload's rule", []string{requestAuth("foo", "other", "")},
			want{"missing": true, "invalid": true}},
		{"other namespace's rule", []string{requestAuth("bar", "", "")},
			want{"missing": true, "invalid": true}},
		{"requestPrincipals without a rule", []string{requireJWT},
			want{"missing": false, "invalid": false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := wardSim(t, snapshotOf(t, append([]string{matrixWorkload, peerAuth("foo", "default", "", "STRICT", "")}, c.docs...)...), web, hooks.Config{}, nil)
			for _, p := range matrixPorts[:3] {
				for tok, allowed := range c.want {
					r := mtlsTo(p.port, p.proto, "spiffe://cluster.local/ns/bar/sa/client")
					r.JWT = tokens[tok]
					res := sim.Run(r)
					if (res.Verdict == simulate.Allowed) != allowed {
						t.Errorf("%d (%s), %s token: want allowed=%v, got %s\n%s", p.port, p.proto, tok, allowed, res, strings.Join(res.Trace, "\n"))
					}
					if tok == "invalid" && !allowed && c.name != "requestPrincipals without a rule" && res.Status != 401 {
						t.Errorf("%d (%s): invalid token answered %d, want 401", p.port, p.proto, res.Status)
					}
				}
			}
		})
	}
}
