package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/ca"
)

// mtlsFixture is Ward's secure port as ward serve assembles it: the CA's
// server TLS config, and the ext_authz server in caller-bound mode.
type mtlsFixture struct {
	ca    *ca.CA
	addr  string
	roots atomic.Pointer[[]*x509.Certificate]
}

func startMTLS(t *testing.T, s *Server) *mtlsFixture {
	t.Helper()
	authority, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	f := &mtlsFixture{ca: authority}
	roots := authority.Roots()
	f.roots.Store(&roots)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(authority.ServerTLSConfig())))
	s.RegisterMTLS(g, PeerConfig{TrustDomain: authority.TrustDomain(), Roots: func() []*x509.Certificate { return *f.roots.Load() }})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return f
}

// client dials the secure port verifying the server's SPIFFE ID; with a
// non-empty id it presents a certificate the CA issued for it.
func (f *mtlsFixture) client(t *testing.T, id string) authv3.AuthorizationClient {
	t.Helper()
	return f.clientSignedBy(t, f.ca, id)
}

// clientSignedBy is client with a certificate that issuer issued.
func (f *mtlsFixture) clientSignedBy(t *testing.T, issuer *ca.CA, id string) authv3.AuthorizationClient {
	t.Helper()
	bundle := x509bundle.FromX509Authorities(f.ca.TrustDomain(), f.ca.Roots())
	tc := tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(f.ca.ServerID()))
	if id != "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := issuer.Sign(ca.Params{ID: spiffeid.RequireFromString(id), PublicKey: key.Public()})
		if err != nil {
			t.Fatal(err)
		}
		svid := &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: []*x509.Certificate{issued.Leaf}, PrivateKey: key}
		tc = tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(f.ca.ServerID()))
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// TestMTLSCallerBinding: over the secure port, a check is decided only
// for a caller with a verified Ward certificate asking about its own
// namespace; everything else is denied (not an error) with a reason that
// says why, and logged.
func TestMTLSCallerBinding(t *testing.T) {
	var logbuf syncBuffer
	dl, err := decisionlog.New(decisionlog.Config{Writer: &logbuf})
	if err != nil {
		t.Fatal(err)
	}
	f := startMTLS(t, newServer(t, Config{Decisions: dl}, "", policies))
	ctx := context.Background()
	web := "spiffe://cluster.local/ns/shop/sa/web"
	shop := f.client(t, web)

	resp, err := shop.Check(ctx, check("shop", `{"app":"cart"}`, web, "GET", "/items"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		t.Fatalf("a shop caller asking about shop: want allow, got %v", resp)
	}

	for _, tc := range []struct {
		name   string
		client authv3.AuthorizationClient
		ns     string
		reason string
	}{
		{"another namespace", shop, "bank", "denied: caller_forbidden: ext_authz caller not permitted: spiffe://cluster.local/ns/shop/sa/web (namespace shop) may only ask about workloads of namespace shop, not bank"},
		{"no client certificate", f.client(t, ""), "shop", "denied: caller_unauthenticated: ext_authz caller not permitted: no client certificate verified against the mesh roots"},
		{"a non-workload identity", f.client(t, "spiffe://cluster.local/operator"), "shop", "denied: caller_unauthenticated: ext_authz caller not permitted: parse identity"},
	} {
		resp, err := tc.client.Check(ctx, check(tc.ns, `{"app":"cart"}`, web, "GET", "/items"))
		if err != nil {
			t.Fatalf("%s: a denial must be an answer, not an error: %v", tc.name, err)
		}
		if resp.GetStatus().GetCode() != int32(code.Code_PERMISSION_DENIED) || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("%s: want 403 PERMISSION_DENIED, got %v", tc.name, resp)
		}
		if got := reasonOf(resp); !strings.HasPrefix(got, tc.reason) {
			t.Errorf("%s: reason %q, want prefix %q", tc.name, got, tc.reason)
		}
	}

	// Rotation removed the root the caller's certificate chains to: its
	// open connection stops being trusted.
	other := []*x509.Certificate{{Raw: []byte("not the root")}}
	f.roots.Store(&other)
	resp, err = shop.Check(ctx, check("shop", `{"app":"cart"}`, web, "GET", "/items"))
	if err != nil || !strings.HasPrefix(reasonOf(resp), "denied: caller_unauthenticated") {
		t.Errorf("caller chaining to a removed root: %v %v, want caller_unauthenticated", resp, err)
	}

	log := logbuf.String()
	for _, want := range []string{`"reason":"caller_forbidden"`, `"reason":"caller_unauthenticated"`, `"workload":"bank/"`} {
		if !strings.Contains(log, want) {
			t.Errorf("decision log lacks %s:\n%s", want, log)
		}
	}
}

// TestMTLSForeignCertificateRefused: a client certificate from another CA
// fails the handshake (the secure port verifies any certificate given),
// so no check is ever decided for it.
func TestMTLSForeignCertificateRefused(t *testing.T) {
	f := startMTLS(t, newServer(t, Config{}, "", policies))
	foreign, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	const id = "spiffe://cluster.local/ns/shop/sa/web"
	resp, err := f.clientSignedBy(t, foreign, id).Check(context.Background(), check("shop", `{"app":"cart"}`, id, "GET", "/items"))
	if err == nil {
		t.Fatalf("a foreign certificate got an answer: %v", resp)
	}
}
