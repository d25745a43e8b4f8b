package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
)

// jwtClock is the resolver's clock: real time for token checks, manual
// wake-ups for refresh and retry.
type jwtClock struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters []chan time.Time
	sleeps  chan time.Duration
}

func (c *jwtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *jwtClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	c.sleeps <- d
	return ch
}

// fire moves the clock d ahead and wakes the resolver's pending sleep.
func (c *jwtClock) fire(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	for _, ch := range c.waiters {
		ch <- time.Now()
	}
	c.waiters = nil
}

func (c *jwtClock) waitSleep(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.sleeps:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the JWKS resolver did not go back to sleep within 10s")
		return 0
	}
}

// signJWT signs a token from iss for sub with the test key k; the
// audience is "cart" unless aud is given.
func signJWT(t *testing.T, k jwk.Key, iss, sub string, exp time.Time, aud ...string) string {
	t.Helper()
	if len(aud) == 0 {
		aud = []string{"cart"}
	}
	return authntest.Token(t, k, authntest.Claims{Issuer: iss, Subject: sub, Audience: aud, Expiry: exp})
}

// startIdP serves OIDC discovery and a JWKS holding keys over HTTPS; while
// up is false (when not nil) the JWKS endpoint answers 502. It returns the
// issuer and a client trusting it.
func startIdP(t *testing.T, up *atomic.Bool, keys ...jwk.Key) (string, *http.Client) {
	t.Helper()
	set := authntest.PublicJWKS(t, keys...)
	var idp *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.URL, "jwks_uri": idp.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		if up != nil && !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(set))
	})
	idp = httptest.NewTLSServer(mux)
	t.Cleanup(idp.Close)
	return idp.URL, idp.Client()
}

// envoyLike plays the data path of a sidecar for one request: the
// jwt_authn config Ward emits, evaluated by authn.Authenticate, then (if
// authentication passed) an ext_authz Check carrying the verified payload
// exactly where jwt_authn's payload_in_metadata puts it.
type envoyLike struct {
	t     *testing.T
	keys  authn.KeySets
	snap  *mesh.Snapshot
	authz authv3.AuthorizationClient
}

// do returns 401 when authentication rejects, else the ext_authz verdict (200/403).
func (e envoyLike) do(token string) int {
	e.t.Helper()
	proxy := &mesh.Proxy{Type: mesh.ProxySidecar, Namespace: "shop", Labels: mesh.Labels{"app": "cart"}}
	cfg, _ := authn.JWTAuthn(authn.RequestAuthsFor(e.snap, proxy), e.keys)
	headers := map[string]string{":method": "GET", ":path": "/items"}
	if token != "" {
		headers["authorization"] = "Bearer " + token
	}
	a, err := authn.Authenticate(cfg, authn.TokenRequest{Method: "GET", Headers: headers}, time.Now())
	if err != nil {
		return http.StatusUnauthorized
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/shop/sa/web", Address: sockAddr("127.0.0.1", 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: sockAddr("127.0.0.1", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/items", Host: "cart", Headers: headers}},
		ContextExtensions: map[string]string{authz.ContextNamespace: "shop", authz.ContextLabels: `{"app":"cart"}`},
	}}
	if a.Claims != nil {
		payload, err := structpb.NewStruct(a.Claims)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			authn.JWTFilterName: {Fields: map[string]*structpb.Value{authn.JWTPayloadKey: structpb.NewStructValue(payload)}}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.authz.Check(ctx, req)
	if err != nil {
		e.t.Fatalf("ext_authz Check: %v", err)
	}
	if resp.GetOkResponse() != nil {
		return http.StatusOK
	}
	return http.StatusForbidden
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// TestAuthnJWTThroughExtAuthz: tokens minted with jwx against a local
// HTTPS OIDC provider whose JWKS is down at start; Ward's resolver fails
// closed, then recovers (change notification observed), and the same
// tokens are judged by jwt_authn semantics and Ward's ext_authz server
// with an AuthorizationPolicy requiring a request principal.
func TestAuthnJWTThroughExtAuthz(t *testing.T) {
	rsaKey, ecKey := authntest.Key(t, "rsa"), authntest.Key(t, "ec")
	var up atomic.Bool
	iss, idpClient := startIdP(t, &up, rsaKey, ecKey)

	dir := t.TempDir()
	if err := os.WriteFile(dir+"/policy.yaml", []byte(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  jwtRules:
  - issuer: "`+iss+`"
    audiences: [cart]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["`+iss+`/alice"]}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Rejected)
	}
	snap := res.Snapshot

	// ext_authz over real gRPC on loopback.
	az := extauthz.New(extauthz.Config{})
	if err := az.Update(snap); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- az.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}

	// The resolver, with a push counter standing in for the xDS server.
	clock := &jwtClock{sleeps: make(chan time.Duration, 100)}
	pushes := make(chan string, 10)
	r := jwks.New(jwks.Config{Clock: clock, Client: idpClient, OnChange: func(i string) { pushes <- i }})
	r.Track(snap)
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		conn.Close()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ext_authz: %v", err)
		}
		<-runDone
	})
	envoy := envoyLike{t: t, keys: r, snap: snap, authz: authv3.NewAuthorizationClient(conn)}
	now := time.Now()
	alice := signJWT(t, rsaKey, iss, "alice", now.Add(time.Hour))
	aliceEC := signJWT(t, ecKey, iss, "alice", now.Add(time.Hour))
	bob := signJWT(t, rsaKey, iss, "bob", now.Add(time.Hour))

	// JWKS down at start: presented tokens are rejected, token-less
	// requests reach authorization (which requires a principal).
	if d := clock.waitSleep(t); d <= 0 || d > time.Second {
		t.Fatalf("first retry in %s, want within 1s", d)
	}
	if got := envoy.do(alice); got != http.StatusUnauthorized {
		t.Fatalf("valid token while JWKS is down: %d, want 401 (fail closed)", got)
	}
	if got := envoy.do(""); got != http.StatusForbidden {
		t.Fatalf("no token while JWKS is down: %d, want 403 from ext_authz", got)
	}

	// Recovery: pushed at once, then the cases.
	up.Store(true)
	clock.fire(time.Second)
	select {
	case i := <-pushes:
		if i != iss {
			t.Fatalf("push for %s", i)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push after the JWKS recovered")
	}
	clock.waitSleep(t)
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"valid RS256 alice", alice, http.StatusOK},
		{"valid ES256 alice", aliceEC, http.StatusOK},
		{"valid token, principal not allowed", bob, http.StatusForbidden},
		{"no token", "", http.StatusForbidden},
		{"expired", signJWT(t, rsaKey, iss, "alice", now.Add(-time.Hour)), http.StatusUnauthorized},
		{"wrong issuer", signJWT(t, rsaKey, "https://evil.example", "alice", now.Add(time.Hour)), http.StatusUnauthorized},
		{"wrong audience", signJWT(t, rsaKey, iss, "alice", now.Add(time.Hour), "billing"), http.StatusUnauthorized},
		{"unknown kid", signJWT(t, authntest.Key(t, "rsa-rotated"), iss, "alice", now.Add(time.Hour)), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		if got := envoy.do(tc.token); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}
