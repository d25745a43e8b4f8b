package grpcauthz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

const issuer = "https://idp.example"

// policies: web may call UnaryCall and StreamingOutputCall; EmptyCall
// needs alice's token (inline keys, so no key provider is involved).
func policies(jwks string) string {
	return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  jwtRules: [{issuer: "` + issuer + `", audiences: [cart], jwks: '` + jwks + `'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]
    to: [{operation: {paths: ["/grpc.testing.TestService/UnaryCall", "/grpc.testing.TestService/StreamingOutputCall"]}}]
  - from: [{source: {requestPrincipals: ["` + issuer + `/alice"]}}]
    to: [{operation: {paths: ["/grpc.testing.TestService/EmptyCall"]}}]
`
}

func snapshot(t *testing.T, yaml string) *mesh.Snapshot {
	t.Helper()
	cfgs, _, err := schema.DecodeAll([]byte(yaml), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
}

// pki is a throwaway mesh CA issuing SPIFFE certificates.
type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &pki{t: t, cert: c, key: key, pool: pool}
}

func (p *pki) issue(spiffeID string, dns ...string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	u, _ := url.Parse(spiffeID)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{u}, DNSNames: dns,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, key.Public(), p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// recorder keeps the last CheckRequest on its way to the real server.
type recorder struct {
	authv3.AuthorizationClient
	mu   sync.Mutex
	last *authv3.CheckRequest
}

func (r *recorder) Check(ctx context.Context, in *authv3.CheckRequest, opts ...grpc.CallOption) (*authv3.CheckResponse, error) {
	r.mu.Lock()
	r.last = in
	r.mu.Unlock()
	return r.AuthorizationClient.Check(ctx, in, opts...)
}

func (r *recorder) lastCheck() *authv3.CheckRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// extAuthz serves Ward's ext_authz server for snap on loopback.
func extAuthz(t *testing.T, snap *mesh.Snapshot, log *syncBuffer) authv3.AuthorizationClient {
	t.Helper()
	dl, err := decisionlog.New(decisionlog.Config{Writer: log})
	if err != nil {
		t.Fatal(err)
	}
	s := extauthz.New(extauthz.Config{Decisions: dl, Timeout: time.Minute})
	if err := s.Update(snap); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ext_authz serve: %v", err)
		}
	})
	return authv3.NewAuthorizationClient(conn)
}

// echo answers with the x-tenant metadata it sees.
type echo struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echo) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return &testgrpc.SimpleResponse{Username: strings.Join(md.Get("x-tenant"), ",")}, nil
}

func (echo) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (echo) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, s testgrpc.TestService_StreamingOutputCallServer) error {
	return s.Send(&testgrpc.StreamingOutputCallResponse{})
}

// serve starts the protected mTLS server with the interceptors of a.
func serve(t *testing.T, p *pki, a *Authorizer) string {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.issue("spiffe://cluster.local/ns/shop/sa/cart", "cart.shop")},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool, MinVersion: tls.VersionTLS12})
	s := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(a.UnaryServerInterceptor()), grpc.StreamInterceptor(a.StreamServerInterceptor()))
	testgrpc.RegisterTestServiceServer(s, echo{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// client dials addr with the mTLS identity spiffeID.
func client(t *testing.T, p *pki, addr, spiffeID string) testgrpc.TestServiceClient {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.issue(spiffeID)}, RootCAs: p.pool, ServerName: "cart.shop", MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func reasonIn(md metadata.MD) string { return strings.Join(md.Get(DefaultReasonHeader), ",") }

// TestInterceptorAgainstExtAuthz: a real mTLS gRPC server with the
// interceptors, Ward's real ext_authz server on loopback, and clients with
// SPIFFE identities: the check carries what Envoy would send (peer SPIFFE
// ID from the certificate, addresses, authority, headers), allowed calls
// learn the allowing rule, denied ones get PermissionDenied with the
// reason, rejected tokens Unauthenticated, and every decision is logged.
func TestInterceptorAgainstExtAuthz(t *testing.T) {
	key := authntest.NewKey(t, "test-key")
	var log syncBuffer
	rec := &recorder{AuthorizationClient: extAuthz(t, snapshot(t, policies(authntest.PublicJWKS(t, key))), &log)}
	a, err := New(Config{Client: rec, Namespace: "shop", Labels: map[string]string{"app": "cart"}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	addr := serve(t, p, a)
	web := client(t, p, addr, "spiffe://cluster.local/ns/shop/sa/web")
	other := client(t, p, addr, "spiffe://cluster.local/ns/shop/sa/other")
	ctx := context.Background()

	// Allowed by the peer's identity; the caller learns the rule.
	var hdr metadata.MD
	md := metadata.Pairs("x-tenant", "acme", "x-tenant", "beta", "x-trace-bin", "\x00\x01")
	resp, err := web.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testgrpc.SimpleRequest{}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("web UnaryCall: %v", err)
	}
	if got := reasonIn(hdr); got != "allowed by ns[shop]-policy[allow-cart]-rule[0]" {
		t.Errorf("allow reason header %q", got)
	}
	if resp.GetUsername() != "acme,beta" {
		t.Errorf("handler saw x-tenant %q", resp.GetUsername())
	}
	checkShape(t, rec.lastCheck(), addr)

	// Denied: another identity.
	var trailer metadata.MD
	_, err = other.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "no ALLOW policy matched") {
		t.Errorf("other UnaryCall: %v, want PermissionDenied naming the reason", err)
	}
	if got := reasonIn(trailer); got != "denied: no ALLOW policy matched (1 candidates)" {
		t.Errorf("deny reason trailer %q", got)
	}

	// Tokens (the server verifies them itself).
	now := time.Now()
	token := func(k jwk.Key, sub string, exp time.Time) string {
		return authntest.Token(t, k, authntest.Claims{Issuer: issuer, Subject: sub, Audience: []string{"cart"}, Expiry: exp})
	}
	alice, bob := token(key, "alice", now.Add(time.Hour)), token(key, "bob", now.Add(time.Hour))
	if _, err := other.EmptyCall(bearer(ctx, alice), &testgrpc.Empty{}, grpc.Header(&hdr)); err != nil {
		t.Errorf("EmptyCall with alice's token: %v", err)
	} else if got := reasonIn(hdr); got != "allowed by ns[shop]-policy[allow-cart]-rule[1]" {
		t.Errorf("token allow reason %q", got)
	}
	if _, err := other.EmptyCall(bearer(ctx, bob), &testgrpc.Empty{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("EmptyCall with bob's token: %v, want PermissionDenied", err)
	}
	if _, err := other.EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("EmptyCall without a token: %v, want PermissionDenied", err)
	}
	expired := token(key, "alice", now.Add(-time.Hour))
	strange := token(authntest.NewKey(t, "test-key"), "alice", now.Add(time.Hour)) // same kid, other key
	for name, tok := range map[string]string{"expired": expired, "foreign key": strange, "garbage": "a.b.c"} {
		_, err := other.EmptyCall(bearer(ctx, tok), &testgrpc.Empty{})
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "unauthenticated") {
			t.Errorf("EmptyCall with a %s token: %v, want Unauthenticated", name, err)
		}
	}

	// Streams are checked when they open.
	if err := stream(ctx, web); err != nil {
		t.Errorf("web stream: %v", err)
	}
	if err := stream(ctx, other); status.Code(err) != codes.PermissionDenied {
		t.Errorf("other stream: %v, want PermissionDenied", err)
	}

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 10 {
		t.Errorf("%d decision log entries, want 10:\n%s", len(lines), log.String())
	}
	if !strings.Contains(log.String(), `"request_principal":"`+issuer+`/alice"`) || !strings.Contains(log.String(), `"source_principal":"spiffe://cluster.local/ns/shop/sa/other"`) {
		t.Errorf("decision log lacks principals:\n%s", log.String())
	}
}

func stream(ctx context.Context, c testgrpc.TestServiceClient) error {
	s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

// checkShape holds the CheckRequest to what Envoy would send.
func checkShape(t *testing.T, cr *authv3.CheckRequest, addr string) {
	t.Helper()
	a := cr.GetAttributes()
	if got := a.GetSource().GetPrincipal(); got != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Errorf("source principal %q", got)
	}
	if got := a.GetSource().GetAddress().GetSocketAddress().GetAddress(); got != "127.0.0.1" {
		t.Errorf("source address %q", got)
	}
	_, port, _ := net.SplitHostPort(addr)
	dst := a.GetDestination().GetAddress().GetSocketAddress()
	if dst.GetAddress() != "127.0.0.1" || port != itoa(dst.GetPortValue()) {
		t.Errorf("destination %v, want %s", dst, addr)
	}
	h := a.GetRequest().GetHttp()
	if h.GetMethod() != "POST" || h.GetPath() != "/grpc.testing.TestService/UnaryCall" || h.GetProtocol() != "HTTP/2" || h.GetScheme() != "https" {
		t.Errorf("http %s %s %s %s", h.GetMethod(), h.GetPath(), h.GetProtocol(), h.GetScheme())
	}
	if h.GetHost() == "" || h.GetHeaders()[":authority"] != h.GetHost() || h.GetHeaders()[":path"] != h.GetPath() {
		t.Errorf("host %q, pseudo-headers %v", h.GetHost(), h.GetHeaders())
	}
	if h.GetHeaders()["x-tenant"] != "acme,beta" || h.GetHeaders()["content-type"] != "application/grpc" {
		t.Errorf("headers %v", h.GetHeaders())
	}
	if _, ok := h.GetHeaders()["x-trace-bin"]; ok {
		t.Error("a -bin header was sent")
	}
	if a.GetTlsSession().GetSni() != "cart.shop" {
		t.Errorf("sni %q", a.GetTlsSession().GetSni())
	}
	ext := a.GetContextExtensions()
	if ext[extauthz.ContextProxyless] == "" || ext[authz.ContextNamespace] != "shop" || ext[authz.ContextLabels] != `{"app":"cart"}` {
		t.Errorf("context extensions %v", ext)
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// TestFailsClosedWhenExtAuthzIsDown: no ext_authz server answering means
// PermissionDenied, and the handler never runs.
func TestFailsClosedWhenExtAuthzIsDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	a, err := New(Config{Target: dead, DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Namespace: "shop", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	p := newPKI(t)
	c := client(t, p, serve(t, p, a), "spiffe://cluster.local/ns/shop/sa/web")
	_, err = c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "ext_authz unavailable") {
		t.Fatalf("with ext_authz down: %v, want PermissionDenied: ext_authz unavailable", err)
	}
	if err := stream(context.Background(), c); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream with ext_authz down: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Target: "127.0.0.1:1"}); err == nil {
		t.Error("no namespace accepted")
	}
	if _, err := New(Config{Namespace: "shop"}); err == nil {
		t.Error("neither client nor target accepted")
	}
}

// TestWireNames: the keys this package repeats (to keep OPA out of
// applications) are the server's.
func TestWireNames(t *testing.T) {
	for got, want := range map[string]string{
		contextNamespace: authz.ContextNamespace, contextWorkload: authz.ContextWorkload,
		contextLabels: authz.ContextLabels, contextProxyless: extauthz.ContextProxyless,
	} {
		if got != want {
			t.Errorf("context extension %q, server reads %q", got, want)
		}
	}
}
