package extauthz

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/decisionlog"
)

const jwtIssuer = "https://idp.example"

// jwtPolicies: cart requires a token from jwtIssuer for /Admin and
// accepts alice (by request principal) or anyone with scope "write".
const jwtPolicies = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  jwtRules: [{issuer: "` + jwtIssuer + `", jwksUri: "` + jwtIssuer + `/jwks", audiences: [cart]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - from: [{source: {requestPrincipals: ["` + jwtIssuer + `/alice"]}}]
  - when: [{key: "request.auth.claims[scope]", values: ["write"]}]
`

// fixedClock is a clock that does not move.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// keySets is a small in-memory authn.KeySets.
type keySets struct {
	mu   sync.Mutex
	sets map[string]string // issuer|uri → JWKS
}

func (k *keySets) JWKS(issuer, uri string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.sets[issuer+"|"+uri]
	return s, ok
}

func (k *keySets) set(issuer, uri, jwks string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sets[issuer+"|"+uri] = jwks
}

// proxylessCheck is what the grpcauthz interceptor sends for one RPC.
func proxylessCheck(token string, marker bool) *authv3.CheckRequest {
	req := check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "POST", "/shop.Cart/Admin")
	h := req.Attributes.Request.Http.Headers
	delete(h, "authorization")
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	if marker {
		req.Attributes.ContextExtensions[ContextProxyless] = "grpc"
	}
	return req
}

// TestProxylessJWT: checks marked proxyless are authenticated by the
// server with the workload's jwt_authn config (real jwx-signed tokens,
// keys from the key provider): an invalid token is jwt_authn's 401, a
// valid one's claims decide, a missing one leaves it to the policy; the
// same token without the marker (an Envoy check) is not trusted.
func TestProxylessJWT(t *testing.T) {
	rsa, ec, rotated := authntest.Key(t, "rsa"), authntest.Key(t, "ec"), authntest.Key(t, "rsa-rotated")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys := &keySets{sets: map[string]string{jwtIssuer + "|" + jwtIssuer + "/jwks": authntest.PublicJWKS(t, rsa, ec)}}
	var logbuf syncBuffer
	dl, err := decisionlog.New(decisionlog.Config{Writer: &logbuf})
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, newServer(t, Config{Keys: keys, Clock: fixedClock{now}, Decisions: dl}, "", jwtPolicies))
	good := authntest.Claims{Issuer: jwtIssuer, Subject: "alice", Audience: []string{"cart"}, Expiry: now.Add(time.Hour)}
	with := func(f func(*authntest.Claims)) authntest.Claims { c := good; f(&c); return c }

	cases := []struct {
		name       string
		req        *authv3.CheckRequest
		wantCode   code.Code
		wantHTTP   int32 // denied status; 0 for allow
		wantReason string
	}{
		{"valid RS256", proxylessCheck(authntest.Token(t, rsa, good), true), code.Code_OK, 0, "allowed by ns[shop]-policy[require-jwt]-rule[0]"},
		{"valid ES256", proxylessCheck(authntest.Token(t, ec, good), true), code.Code_OK, 0, "allowed by ns[shop]-policy[require-jwt]-rule[0]"},
		{"space-delimited scope claim", proxylessCheck(authntest.Token(t, rsa, with(func(c *authntest.Claims) { c.Subject, c.Extra = "bob", map[string]any{"scope": "read write"} })), true),
			code.Code_OK, 0, "allowed by ns[shop]-policy[require-jwt]-rule[1]"},
		{"valid, principal not allowed", proxylessCheck(authntest.Token(t, rsa, with(func(c *authntest.Claims) { c.Subject = "bob" })), true),
			code.Code_PERMISSION_DENIED, 403, "denied: no ALLOW policy matched (1 candidates)"},
		{"missing token: the policy decides", proxylessCheck("", true), code.Code_PERMISSION_DENIED, 403, "denied: no ALLOW policy matched (1 candidates)"},
		{"expired", proxylessCheck(authntest.Token(t, rsa, with(func(c *authntest.Claims) { c.Expiry = now.Add(-2 * time.Minute) })), true),
			code.Code_UNAUTHENTICATED, 401, "denied: unauthenticated: jwt verification fails"},
		{"wrong issuer", proxylessCheck(authntest.Token(t, rsa, with(func(c *authntest.Claims) { c.Issuer = "https://evil.example" })), true),
			code.Code_UNAUTHENTICATED, 401, "denied: unauthenticated: jwt verification fails"},
		{"wrong audience", proxylessCheck(authntest.Token(t, rsa, with(func(c *authntest.Claims) { c.Audience = []string{"billing"} })), true),
			code.Code_UNAUTHENTICATED, 401, "denied: unauthenticated: jwt verification fails"},
		{"unknown kid", proxylessCheck(authntest.Token(t, rotated, good), true), code.Code_UNAUTHENTICATED, 401, "denied: unauthenticated: jwt verification fails"},
		{"garbage", proxylessCheck("not.a.jwt", true), code.Code_UNAUTHENTICATED, 401, "denied: unauthenticated: jwt verification fails"},
		// Without the marker this is an Envoy check: raw tokens are not
		// claims (jwt_authn would have put verified ones in metadata).
		{"Envoy check with a raw token", proxylessCheck(authntest.Token(t, rsa, good), false), code.Code_PERMISSION_DENIED, 403, "denied: no ALLOW policy matched (1 candidates)"},
	}
	for _, tc := range cases {
		resp, err := c.Check(context.Background(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := code.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
			t.Errorf("%s: status %v (%s), want %v", tc.name, got, resp.GetStatus().GetMessage(), tc.wantCode)
			continue
		}
		if tc.wantHTTP == 0 {
			if got := okReason(resp); got != tc.wantReason {
				t.Errorf("%s: allow reason header %q, want %q", tc.name, got, tc.wantReason)
			}
			continue
		}
		if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.wantHTTP {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.wantHTTP)
		}
		if got := reasonOf(resp); got != tc.wantReason {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.wantReason)
		}
	}
	log := logbuf.String()
	if n := strings.Count(log, "\n"); n != len(cases) {
		t.Errorf("%d decision log lines, want %d", n, len(cases))
	}
	if !strings.Contains(log, `"request_principal":"`+jwtIssuer+`/alice"`) || !strings.Contains(log, `"reason":"unauthenticated"`) {
		t.Errorf("decision log lacks the request principal or the unauthenticated reason:\n%s", log)
	}

	// An Envoy check's allow response is unchanged: no reason header.
	req := check("shop", `{"app":"cart"}`, "", "GET", "/x")
	req.Attributes.ContextExtensions[authz.ContextNamespace] = "other"
	if resp, _ := c.Check(context.Background(), req); resp.GetStatus().GetCode() != int32(code.Code_OK) || okReason(resp) != "" {
		t.Errorf("Envoy allow: %v, want OK without a reason header", resp)
	}
}

// TestProxylessJWTMetadataRefused: a proxyless check cannot bring its own
// "verified" claims.
func TestProxylessJWTMetadataRefused(t *testing.T) {
	c := start(t, newServer(t, Config{}, "", jwtPolicies))
	req := proxylessCheck("", true)
	payload, _ := structpb.NewStruct(map[string]any{"payload": map[string]any{"iss": jwtIssuer, "sub": "alice"}})
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{authz.JWTFilter: payload}}
	resp, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(code.Code_INVALID_ARGUMENT) {
		t.Fatalf("proxyless check with jwt_authn metadata: %v, want INVALID_ARGUMENT", resp.GetStatus())
	}
}

// TestProxylessJWTKeyRotation: the memoised jwt_authn config follows the
// key provider: a token signed with a new key is rejected until the
// provider serves it, then accepted; unchanged keys reuse the config.
func TestProxylessJWTKeyRotation(t *testing.T) {
	rsa, rotated := authntest.Key(t, "rsa"), authntest.Key(t, "rsa-rotated")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys := &keySets{sets: map[string]string{}} // nothing fetched yet: fail closed
	s := newServer(t, Config{Keys: keys, Clock: fixedClock{now}}, "", jwtPolicies)
	c := start(t, s)
	good := authntest.Claims{Issuer: jwtIssuer, Subject: "alice", Audience: []string{"cart"}, Expiry: now.Add(time.Hour)}
	do := func(k jwk.Key) code.Code {
		t.Helper()
		resp, err := c.Check(context.Background(), proxylessCheck(authntest.Token(t, k, good), true))
		if err != nil {
			t.Fatal(err)
		}
		return code.Code(resp.GetStatus().GetCode())
	}
	if got := do(rsa); got != code.Code_UNAUTHENTICATED {
		t.Fatalf("before any keys: %v, want UNAUTHENTICATED (fail closed)", got)
	}
	keys.set(jwtIssuer, jwtIssuer+"/jwks", authntest.PublicJWKS(t, rsa))
	if got := do(rsa); got != code.Code_OK {
		t.Fatalf("after the keys arrived: %v, want OK", got)
	}
	first := s.jwt.entries[workloadKey(authz.Workload{Namespace: "shop", Labels: map[string]string{"app": "cart"}})]
	if got := do(rsa); got != code.Code_OK {
		t.Fatalf("again: %v", got)
	}
	if again := s.jwt.entries[workloadKey(authz.Workload{Namespace: "shop", Labels: map[string]string{"app": "cart"}})]; first == nil || again != first {
		t.Error("the jwt_authn config was rebuilt although neither snapshot nor keys changed")
	}
	if got := do(rotated); got != code.Code_UNAUTHENTICATED {
		t.Fatalf("rotated key not yet served: %v, want UNAUTHENTICATED", got)
	}
	keys.set(jwtIssuer, jwtIssuer+"/jwks", authntest.PublicJWKS(t, rotated))
	if got := do(rotated); got != code.Code_OK {
		t.Fatalf("rotated key served: %v, want OK", got)
	}
	if got := do(rsa); got != code.Code_UNAUTHENTICATED {
		t.Fatalf("old key dropped: %v, want UNAUTHENTICATED", got)
	}
}

// TestProxylessJWTForRegoProvider: a CUSTOM rego provider sees the
// verified payload where jwt_authn would have put it, and the caller's
// request is left as it was.
func TestProxylessJWTForRegoProvider(t *testing.T) {
	const meshYAML = `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: only-alice
    rego:
      module: |
        package envoy.authz
        import rego.v1
        default allow := false
        allow if input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].payload.sub == "alice"
`
	const custom = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: shop}
spec: {selector: {matchLabels: {app: cart}}, action: CUSTOM, provider: {name: only-alice}, rules: [{}]}
`
	rsa := authntest.Key(t, "rsa")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys := &keySets{sets: map[string]string{jwtIssuer + "|" + jwtIssuer + "/jwks": authntest.PublicJWKS(t, rsa)}}
	s := newServer(t, Config{Keys: keys, Clock: fixedClock{now}}, meshYAML, jwtPolicies+custom)
	for sub, want := range map[string]code.Code{"alice": code.Code_OK, "bob": code.Code_PERMISSION_DENIED} {
		req := proxylessCheck(authntest.Token(t, rsa, authntest.Claims{Issuer: jwtIssuer, Subject: sub, Audience: []string{"cart"}, Expiry: now.Add(time.Hour)}), true)
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := code.Code(resp.GetStatus().GetCode()); got != want {
			t.Errorf("%s: %v (%s), want %v", sub, got, resp.GetStatus().GetMessage(), want)
		}
		if req.GetAttributes().GetMetadataContext() != nil {
			t.Fatalf("%s: the caller's check request was modified", sub)
		}
	}
}

// FuzzProxylessCheck: whatever a proxyless check carries in its token
// locations, the server answers (never an RPC error) and allows only a
// request presenting the one validly signed token.
func FuzzProxylessCheck(f *testing.F) {
	rsa := authntest.Key(f, "rsa")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys := &keySets{sets: map[string]string{jwtIssuer + "|" + jwtIssuer + "/jwks": authntest.PublicJWKS(f, rsa)}}
	s := newServer(f, Config{Keys: keys, Clock: fixedClock{now}}, "", jwtPolicies)
	valid := authntest.Token(f, rsa, authntest.Claims{Issuer: jwtIssuer, Subject: "alice", Audience: []string{"cart"}, Expiry: now.Add(time.Hour)})
	sig := valid[strings.LastIndex(valid, ".")+1:]
	f.Add("Bearer "+valid, "", "/shop.Cart/Admin")
	f.Add("Bearer "+valid[:len(valid)-2], "a=b", "/x?access_token="+valid)
	f.Add("", "session="+valid, "/x?access_token=a.b.c")
	f.Fuzz(func(t *testing.T, authorization, cookie, path string) {
		req := proxylessCheck("", true)
		h := req.Attributes.Request.Http
		h.Path, h.Headers[":path"] = path, path
		if authorization != "" {
			h.Headers["authorization"] = authorization
		}
		if cookie != "" {
			h.Headers["cookie"] = cookie
		}
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("Check returned an error: %v", err)
		}
		switch c := code.Code(resp.GetStatus().GetCode()); c {
		case code.Code_OK:
			if !strings.Contains(authorization+path, sig) {
				t.Fatalf("allowed without the valid token: authorization %q path %q", authorization, path)
			}
		case code.Code_PERMISSION_DENIED, code.Code_UNAUTHENTICATED, code.Code_INVALID_ARGUMENT:
		default:
			t.Fatalf("status %v", c)
		}
	})
}
