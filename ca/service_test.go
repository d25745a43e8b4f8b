package ca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
)

// serve runs c's certificate service over TLS on a free loopback port.
func serve(t *testing.T, c *CA) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, c *CA, addr string, mod func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{
		Addr: addr, ServerID: c.ServerID(), Clock: c.clock,
		Bundle: func() *x509bundle.Bundle { return c.current().bundle },
	}
	if mod != nil {
		mod(&cfg)
	}
	cl, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func withToken(tok string) func(*ClientConfig) { return func(c *ClientConfig) { c.Token = tok } }

func wantCode(t *testing.T, name string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want %v", name, err, code)
	}
	if err != nil && strings.Contains(err.Error(), "token") {
		t.Errorf("%s: error leaks its reason to the caller: %v", name, err)
	}
}

// fakeReviewer answers TokenReviews from a table of tokens.
type fakeReviewer map[string]authnv1.TokenReviewStatus

func (f fakeReviewer) Review(_ context.Context, token string, aud []string) (*authnv1.TokenReview, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: aud}}
	tr.Status = f[token]
	return tr, nil
}

func TestServiceJoinTokens(t *testing.T) {
	clk := &fakeClock{now: time.Now().Truncate(time.Second)}
	c := newTestCA(t, clk, nil)
	addr := serve(t, c)
	ctx := context.Background()
	tok, err := c.Tokens().Create("shop", "cart", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := ecKey(t)
	chain, err := dial(t, c, addr, withToken(tok.String())).CreateCertificate(ctx, makeCSR(t, key, "spiffe://example.org/ns/ignored/dns/x"), 0)
	wantCode(t, "csr SAN outside the token's identity", err, codes.InvalidArgument)

	chain, err = dial(t, c, addr, withToken(tok.String())).CreateCertificate(ctx, makeCSR(t, key), 2*time.Hour)
	if err != nil {
		t.Fatalf("join token happy path: %v", err)
	}
	certs, roots, err := SplitChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(c.td, roots), x509svid.WithTime(clk.Now()))
	if err != nil || id.String() != "spiffe://example.org/ns/shop/sa/cart" {
		t.Fatalf("issued %v, %v", id, err)
	}
	if got := certs[0].NotAfter.Sub(clk.Now()); got != 2*time.Hour {
		t.Errorf("requested 2h, leaf lives %v", got)
	}

	_, err = dial(t, c, addr, withToken(tok.String())).CreateCertificate(ctx, makeCSR(t, key), 0)
	wantCode(t, "reused token", err, codes.Unauthenticated)

	exp, _ := c.Tokens().Create("shop", "cart", time.Minute)
	clk.Advance(2 * time.Minute)
	_, err = dial(t, c, addr, withToken(exp.String())).CreateCertificate(ctx, makeCSR(t, key), 0)
	wantCode(t, "expired token", err, codes.Unauthenticated)

	other, _ := c.Tokens().Create("shop", "cart", time.Hour)
	_, err = dial(t, c, addr, withToken(other.String())).CreateCertificate(ctx, makeCSR(t, key, "spiffe://example.org/ns/bank/sa/vault"), 0)
	wantCode(t, "token used for another identity", err, codes.InvalidArgument)

	forged := other
	forged.Secret = strings.Repeat("B", tokenSecretLen)
	_, err = dial(t, c, addr, withToken(forged.String())).CreateCertificate(ctx, makeCSR(t, key), 0)
	wantCode(t, "forged secret", err, codes.Unauthenticated)
	_, err = dial(t, c, addr, nil).CreateCertificate(ctx, makeCSR(t, key), 0)
	wantCode(t, "no credential", err, codes.Unauthenticated)

	if got := counterValue(c.metrics.csrs.WithLabelValues(resultIssued)); got != 1 {
		t.Errorf("issued counter %v, want 1", got)
	}
	if got := counterValue(c.metrics.csrs.WithLabelValues(resultUnauthenticated)); got != 4 {
		t.Errorf("unauthenticated counter %v, want 4", got)
	}
}

func TestServiceCSRChecks(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: time.Now().Truncate(time.Second)}, nil)
	addr := serve(t, c)
	ctx := context.Background()
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	big := makeCSR(t, ecKey(t))
	big = append(big, []byte(strings.Repeat("\n", DefaultMaxCSRBytes))...)
	for name, csr := range map[string][]byte{
		"garbage":   []byte("-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n"),
		"not pem":   []byte("hello"),
		"oversized": big,
		"rsa-1024":  makeCSR(t, rsa1024),
	} {
		tok, _ := c.Tokens().Create("a", "b", time.Hour)
		_, err := dial(t, c, addr, withToken(tok.String())).CreateCertificate(ctx, csr, 0)
		wantCode(t, name, err, codes.InvalidArgument)
		if _, _, err := c.Tokens().Check(tok); err != nil {
			t.Errorf("%s: rejected CSR consumed the join token: %v", name, err)
		}
	}
}

func TestServiceMTLSRenewal(t *testing.T) {
	clk := &fakeClock{now: time.Now().Truncate(time.Second)}
	c := newTestCA(t, clk, nil)
	addr := serve(t, c)
	ctx := context.Background()
	key := ecKey(t)
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/shop/sa/cart"), PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{iss.Leaf.Raw}, PrivateKey: key, Leaf: iss.Leaf}
	withCert := func(cc *ClientConfig) { cc.Certificate = cert }
	chain, err := dial(t, c, addr, withCert).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
	if err != nil {
		t.Fatalf("renewal by client certificate: %v", err)
	}
	certs, _, _ := SplitChain(chain)
	if certs[0].URIs[0].String() != "spiffe://example.org/ns/shop/sa/cart" {
		t.Errorf("renewed as %v", certs[0].URIs)
	}
	_, err = dial(t, c, addr, withCert).CreateCertificate(ctx, makeCSR(t, ecKey(t), "spiffe://example.org/ns/kube-system/sa/admin"), 0)
	wantCode(t, "csr requests a foreign SPIFFE ID", err, codes.InvalidArgument)

	// A certificate from another CA is not a credential.
	other := newTestCA(t, clk, nil)
	oiss, _ := other.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/shop/sa/cart"), PublicKey: key.Public()})
	ocert := &tls.Certificate{Certificate: [][]byte{oiss.Leaf.Raw}, PrivateKey: key}
	_, err = dial(t, c, addr, func(cc *ClientConfig) { cc.Certificate = ocert }).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
	if err == nil {
		t.Error("a certificate from a foreign CA authenticated")
	}
	// The client refuses a server that is not the pinned control plane.
	_, err = dial(t, c, addr, func(cc *ClientConfig) { cc.ServerID = mustID(t, "spiffe://example.org/ns/x/sa/y") }).CreateCertificate(ctx, makeCSR(t, key), 0)
	wantCode(t, "wrong server identity", err, codes.Unavailable)
}

func TestServiceTokenReview(t *testing.T) {
	rev := fakeReviewer{
		"good":      {Authenticated: true, Audiences: []string{"ward-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop:cart"}},
		"wrong-aud": {Authenticated: true, Audiences: []string{"api"}, User: authnv1.UserInfo{Username: "system:serviceaccount:shop:cart"}},
		"user":      {Authenticated: true, Audiences: []string{"ward-ca"}, User: authnv1.UserInfo{Username: "alice"}},
		"denied":    {Authenticated: false, Error: "token expired"},
	}
	c := newTestCA(t, &fakeClock{now: time.Now().Truncate(time.Second)}, func(c *Config) { c.TokenReviewer = rev })
	addr := serve(t, c)
	ctx := context.Background()
	chain, err := dial(t, c, addr, withToken("good")).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
	if err != nil {
		t.Fatalf("service-account token: %v", err)
	}
	certs, _, _ := SplitChain(chain)
	if certs[0].URIs[0].String() != "spiffe://example.org/ns/shop/sa/cart" {
		t.Errorf("issued %v", certs[0].URIs)
	}
	for _, tok := range []string{"wrong-aud", "user", "denied", "unknown"} {
		_, err := dial(t, c, addr, withToken(tok)).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
		wantCode(t, tok, err, codes.Unauthenticated)
	}
	if got := counterValue(c.metrics.authFailures.WithLabelValues(MethodK8sJWT)); got != 4 {
		t.Errorf("k8s-jwt auth failures %v, want 4", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
