package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/authz/grpcauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/hooks"
)

// proxylessJWTPolicies: UnaryCall needs alice's token from iss;
// EmptyCall is open to the mesh.
func proxylessJWTPolicies(iss string) string {
	return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: ns}
spec:
  selector: {matchLabels: {app: echo}}
  jwtRules: [{issuer: "` + iss + `", audiences: [cart]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: ns}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - from: [{source: {requestPrincipals: ["` + iss + `/alice"]}}]
    to: [{operation: {paths: ["/grpc.testing.TestService/UnaryCall"]}}]
  - to: [{operation: {paths: ["/grpc.testing.TestService/EmptyCall"]}}]
`
}

// TestAuthzProxylessThroughExtAuthz: a grpc-go xDS server whose bootstrap
// opts into ext_authz enforcement (WARD_AUTHZ=ext-authz) gets STRICT mTLS
// and no RBAC from Ward's production hooks; the grpcauthz interceptor
// sends each RPC to Ward's ext_authz server over mTLS (the agent's files,
// grpcauthz.MTLSFromDir; the server on a secure port assembled as ward
// serve's 15012), which verifies the JWT with keys from the JWKS resolver
// (as ward serve wires it) and decides with the full policy: a
// requestPrincipals rule that native RBAC could never match. A client
// through xds:/// sees the allowing rule, PermissionDenied with the
// reason without a token, Unauthenticated with a bad one. The interceptor
// of a workload in another namespace cannot ask about this one.
func TestAuthzProxylessThroughExtAuthz(t *testing.T) {
	rsaKey := authntest.Key(t, "rsa")
	iss, idpClient := startIdP(t, nil, rsaKey)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	config := authzConfig(port, proxylessJWTPolicies(iss))
	m := newSecureMesh(t, config, hooks.New(hooks.Config{}))

	// Ward's ext_authz server, with the JWKS resolver for keys.
	res, err := file.Load(m.dir)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Errs())
	}
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan string, 4)
	resolver := jwks.New(jwks.Config{Client: idpClient, OnChange: func(i string) { changed <- i }})
	resolver.Track(res.Snapshot)
	var decisions syncLog
	dl, err := decisionlog.New(decisionlog.Config{Writer: &decisions})
	if err != nil {
		t.Fatal(err)
	}
	az := extauthz.New(extauthz.Config{Keys: resolver, Decisions: dl, Timeout: time.Minute})
	if err := az.Update(res.Snapshot); err != nil {
		t.Fatal(err)
	}
	azAddr := serveSecureExtAuthz(t, m, az)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = resolver.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatal("the JWKS resolver never fetched the IdP's keys")
	}

	// The opted-in proxyless server: identity and namespace/labels from
	// the bootstrap the agent writes.
	boot := optIntoExtAuthz(t, m.identity("ns", "default", "echo-1", "127.0.0.1", map[string]string{"app": "echo", mesh.LabelTLSMode: "istio"}))
	w, err := grpcauthz.ParseBootstrap(boot)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := grpcauthz.MTLSFromDir(identityDir(t, boot), m.ca.ServerID())
	if err != nil {
		t.Fatal(err)
	}
	authzr, err := grpcauthz.New(grpcauthz.Config{Target: azAddr, Namespace: w.Namespace, Labels: w.Labels, Timeout: time.Minute,
		DialOptions: []grpc.DialOption{creds}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authzr.Close() })
	startInterceptedServer(t, boot, lis, authzr)
	client := meshClient(t, m, "ns", "client")

	now := time.Now()
	alice := signJWT(t, rsaKey, iss, "alice", now.Add(time.Hour))
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}

	// Valid token: allowed, and the client learns the rule.
	var hdr metadata.MD
	r, err := client.UnaryCall(withToken(alice), &testgrpc.SimpleRequest{}, grpc.WaitForReady(true), grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("UnaryCall with alice's token: %v", err)
	}
	if got := strings.Join(hdr.Get(grpcauthz.DefaultReasonHeader), ","); got != "allowed by ns[ns]-policy[require-jwt]-rule[0]" {
		t.Errorf("allowing rule seen by the client: %q", got)
	}
	if r.GetUsername() != "spiffe://cluster.local/ns/ns/sa/client" {
		t.Errorf("server saw peer %q: not mTLS", r.GetUsername())
	}
	// The open method needs no token: authorised, it reaches the handler
	// (which does not implement it).
	if _, err := client.EmptyCall(context.Background(), &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("EmptyCall without a token: %v, want the handler's Unimplemented", err)
	}
	// No token: the policy denies, naming why.
	_, err = client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "no ALLOW policy matched") {
		t.Errorf("UnaryCall without a token: %v, want PermissionDenied naming the reason", err)
	}
	// Bad tokens: jwt_authn's 401.
	for name, tok := range map[string]string{
		"expired":      signJWT(t, rsaKey, iss, "alice", now.Add(-time.Hour)),
		"wrong issuer": signJWT(t, rsaKey, "https://evil.example", "alice", now.Add(time.Hour)),
		"unknown kid":  signJWT(t, authntest.Key(t, "rsa-rotated"), iss, "alice", now.Add(time.Hour)),
	} {
		if _, err := client.UnaryCall(withToken(tok), &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("UnaryCall with a %s token: %v, want Unauthenticated", name, err)
		}
	}

	// A workload of namespace other, holding its own agent files, tries
	// to have ns's policy evaluated (or to learn it): denied, the caller's
	// certificate binds it to its namespace.
	otherCreds, err := grpcauthz.MTLSFromDir(identityDir(t, m.identity("other", "default", "spy-1", "127.0.0.1", map[string]string{"app": "spy"})), m.ca.ServerID())
	if err != nil {
		t.Fatal(err)
	}
	spy, err := grpcauthz.New(grpcauthz.Config{Target: azAddr, Namespace: "ns", Labels: w.Labels, Timeout: time.Minute, DialOptions: []grpc.DialOption{otherCreds}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spy.Close() })
	_, err = spy.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.testing.TestService/EmptyCall"},
		func(context.Context, any) (any, error) { return nil, nil })
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "caller_forbidden") {
		t.Errorf("namespace other asking about ns: %v, want PermissionDenied (caller_forbidden)", err)
	}

	log := decisions.String()
	if n := strings.Count(log, "\n"); n != 7 {
		t.Errorf("%d decision log entries, want 7:\n%s", n, log)
	}
	for _, want := range []string{`"request_principal":"` + iss + `/alice"`, `"source_principal":"spiffe://cluster.local/ns/ns/sa/client"`,
		`"rule":"ns[ns]-policy[require-jwt]-rule[0]"`, `"reason":"unauthenticated"`, `"reason":"no_allow_match"`, `"reason":"caller_forbidden"`} {
		if !strings.Contains(log, want) {
			t.Errorf("decision log lacks %s:\n%s", want, log)
		}
	}
}

// serveSecureExtAuthz serves az as ward serve does on its secure port:
// the CA's server TLS config, checks bound to the caller's certificate.
func serveSecureExtAuthz(t *testing.T, m *authnMesh, az *extauthz.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(m.ca.ServerTLSConfig())))
	m.ca.Register(g)
	az.RegisterMTLS(g, extauthz.PeerConfig{TrustDomain: m.ca.TrustDomain(), Roots: m.ca.Roots})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// identityDir is the directory of the agent files a grpc bootstrap's
// identity certificate provider watches.
func identityDir(t *testing.T, boot []byte) string {
	t.Helper()
	var doc struct {
		Providers map[string]struct {
			Config struct {
				Cert string `json:"certificate_file"`
			} `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(boot, &doc); err != nil {
		t.Fatal(err)
	}
	cert := doc.Providers["default"].Config.Cert
	if cert == "" {
		t.Fatalf("bootstrap has no identity certificate file:\n%s", boot)
	}
	return filepath.Dir(cert)
}

// optIntoExtAuthz sets WARD_AUTHZ=ext-authz in a grpc bootstrap's node
// metadata, as `ward agent --authz ext-authz` writes it.
func optIntoExtAuthz(t *testing.T, boot []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(boot, &doc); err != nil {
		t.Fatal(err)
	}
	doc["node"].(map[string]any)["metadata"].(map[string]any)[agent.MetaAuthz] = agent.AuthzExtAuthz
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startInterceptedServer is authzServer with the grpcauthz interceptors.
func startInterceptedServer(t *testing.T, boot []byte, lis net.Listener, a *grpcauthz.Authorizer) {
	t.Helper()
	serveXDS(t, "the grpc server", lis, boot, &peerBackend{}, wardServerCreds(t),
		grpc.UnaryInterceptor(a.UnaryServerInterceptor()), grpc.StreamInterceptor(a.StreamServerInterceptor()))
}

// syncLog is a goroutine-safe decision log sink.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeExtAuthzOverMTLS runs `ward serve` with the plaintext ext_authz
// listener disabled and reaches ext_authz on its secure port as a
// proxyless workload would: `ward agent` enrols bookinfo/productpage with
// a join token, and the grpcauthz interceptor dials with the agent's
// files (grpcauthz.MTLSFromDir), pinning the control plane's default
// SPIFFE ID. Its checks are decided by policy; the same certificate
// asking about another namespace, and a caller with no certificate, are
// denied before any policy.
func TestServeExtAuthzOverMTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	policy := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open-get, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: productpage}}
  rules: [{to: [{operation: {paths: ["/shop.Catalog/Get"]}}]}]
`
	if err := os.WriteFile(filepath.Join(cfg, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	p := startWard(t, "serve", "--config", cfg, "--state", state, "--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0",
		"--secure-addr", "127.0.0.1:0", "--authz-addr", "", "--debounce", "20ms")
	m := p.waitLine(t, regexp.MustCompile(`xds_addr=(\S+) secure_addr=(\S+) authz_addr=(\S+)`), time.Minute)
	xdsAddr, secureAddr := m[1], m[2]
	if m[3] != "disabled" {
		t.Errorf("authz_addr=%s with --authz-addr \"\", want disabled", m[3])
	}
	enrolAgent(t, dir, state, secureAddr, xdsAddr)
	controlPlane := spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/ward")
	creds, err := grpcauthz.MTLSFromDir(filepath.Join(dir, "agent-out"), controlPlane)
	if err != nil {
		t.Fatal(err)
	}
	call := func(ns, method string) error {
		a, err := grpcauthz.New(grpcauthz.Config{Target: secureAddr, DialOptions: []grpc.DialOption{creds}, Namespace: ns,
			Labels: map[string]string{"app": "productpage"}, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		_, err = a.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method},
			func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	if err := call("bookinfo", "/shop.Catalog/Get"); err != nil {
		t.Errorf("productpage's allowed method through ext_authz on the secure port: %v", err)
	}
	for _, tc := range []struct{ ns, method, reason string }{
		{"bookinfo", "/shop.Catalog/Put", "no ALLOW policy matched"},
		{"payments", "/shop.Catalog/Get", "caller_forbidden"},
	} {
		err := call(tc.ns, tc.method)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), tc.reason) {
			t.Errorf("%s %s: %v, want PermissionDenied naming %q", tc.ns, tc.method, err, tc.reason)
		}
	}

	// No client certificate: TLS to the control plane, but denied.
	roots, err := x509bundle.Load(controlPlane.TrustDomain(), filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(secureAddr, grpc.WithTransportCredentials(credentials.NewTLS(
		tlsconfig.TLSClientConfig(roots, tlsconfig.AuthorizeID(controlPlane)))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"ward.namespace": "bookinfo", "ward.labels": `{"app":"productpage"}`},
		Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/shop.Catalog/Get"}},
	}})
	if err != nil {
		t.Fatalf("check without a client certificate: %v, want a denial", err)
	}
	if resp.GetStatus().GetCode() != int32(codes.PermissionDenied) || !strings.Contains(resp.GetStatus().GetMessage(), "caller_unauthenticated") {
		t.Errorf("check without a client certificate: %v, want PERMISSION_DENIED (caller_unauthenticated)", resp.GetStatus())
	}
}
