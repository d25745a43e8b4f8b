package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	authnv1 "k8s.io/api/authentication/v1"

	"github.com/wardmesh/ward/mesh"
)

// fakePlacement places identities ("ns/sa") on nodes.
type fakePlacement map[string][]string

func (f fakePlacement) OnNode(_ context.Context, node string, id mesh.Identity) (bool, error) {
	for _, w := range f[node] {
		if w == id.Namespace+"/"+id.ServiceAccount {
			return true, nil
		}
	}
	return false, nil
}

// nodeFixture is a CA served on loopback with web on node-1, db on
// node-2, and the control plane's own identity claimed for node-1 (the
// reservation must win over placement).
type nodeFixture struct {
	t    *testing.T
	c    *CA
	addr string
	clk  *fakeClock
}

func newNodeFixture(t *testing.T, mod func(*Config)) *nodeFixture {
	clk := &fakeClock{now: time.Now().Truncate(time.Second)}
	c := newTestCA(t, clk, func(cfg *Config) {
		cfg.Placement = fakePlacement{"node-1": {"frontend/web", "ward-system/ward", "ward-system/ward-node"}, "node-2": {"shop/db"}}
		if mod != nil {
			mod(cfg)
		}
	})
	return &nodeFixture{t: t, c: c, addr: serve(t, c), clk: clk}
}

// verify checks chain is an SVID for want and returns its leaf.
func (f *nodeFixture) verify(chain []string, want string) *tls.Certificate {
	f.t.Helper()
	certs, roots, err := SplitChain(chain)
	if err != nil {
		f.t.Fatal(err)
	}
	id, _, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(f.c.td, roots), x509svid.WithTime(f.clk.Now()))
	if err != nil || id.String() != want {
		f.t.Fatalf("issued %v (%v), want %s", id, err, want)
	}
	return &tls.Certificate{Certificate: [][]byte{certs[0].Raw}, Leaf: certs[0]}
}

// enrolNode spends a node join token and returns the node's certificate.
func (f *nodeFixture) enrolNode(node string) *tls.Certificate {
	f.t.Helper()
	tok, err := f.c.Tokens().CreateNode(node, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	key := ecKey(f.t)
	chain, err := dial(f.t, f.c, f.addr, withToken(tok.String())).CreateCertificate(context.Background(), makeCSR(f.t, key), 0)
	if err != nil {
		f.t.Fatalf("node %s enrolment: %v", node, err)
	}
	cert := f.verify(chain, "spiffe://example.org/ns/ward-system/sa/ward-node/node/"+node)
	cert.PrivateKey = key
	return cert
}

func (f *nodeFixture) as(cert *tls.Certificate) *Client {
	return dial(f.t, f.c, f.addr, func(cfg *ClientConfig) { cfg.Certificate = cert })
}

func (f *nodeFixture) ask(cl *Client, id string) ([]string, error) {
	return cl.CreateCertificateFor(context.Background(), mustID(f.t, id), makeCSR(f.t, ecKey(f.t)), 0)
}

func TestNodeImpersonation(t *testing.T) {
	f := newNodeFixture(t, nil)
	node1 := f.as(f.enrolNode("node-1"))

	chain, err := f.ask(node1, "spiffe://example.org/ns/frontend/sa/web")
	if err != nil {
		t.Fatalf("node-1 asking for web on node-1: %v", err)
	}
	f.verify(chain, "spiffe://example.org/ns/frontend/sa/web")
	found := false
	for _, r := range f.c.Issued(f.clk.Now()) {
		found = found || (r.Method == MethodNodeProxy && r.SPIFFEID == "spiffe://example.org/ns/frontend/sa/web")
	}
	if !found {
		t.Errorf("no issuance record with method %s for web", MethodNodeProxy)
	}

	// The node renews its own certificate by mTLS without impersonating.
	chain, err = node1.CreateCertificate(context.Background(), makeCSR(t, ecKey(t)), 0)
	if err != nil {
		t.Fatalf("node renewal: %v", err)
	}
	f.verify(chain, "spiffe://example.org/ns/ward-system/sa/ward-node/node/node-1")

	_, err = f.ask(node1, "spiffe://example.org/ns/shop/sa/db")
	wantCode(t, "node-1 asking for db, which runs on node-2", err, codes.PermissionDenied)
	_, err = f.ask(node1, "spiffe://example.org/ns/ward-system/sa/ward")
	wantCode(t, "node asking for the control plane's identity", err, codes.PermissionDenied)
	_, err = f.ask(node1, "spiffe://example.org/ns/ward-system/sa/ward-node")
	wantCode(t, "node asking for a reserved identity", err, codes.PermissionDenied)
	_, err = f.ask(node1, "spiffe://example.org/ns/ward-system/sa/ward-node/node/node-2")
	wantCode(t, "node asking for another node's identity", err, codes.PermissionDenied)
	_, err = f.ask(node1, "spiffe://other.org/ns/frontend/sa/web")
	wantCode(t, "node asking for a foreign trust domain", err, codes.PermissionDenied)
	_, err = node1.CreateCertificateFor(context.Background(), mustID(t, "spiffe://example.org/ns/frontend/sa/web"), makeCSR(t, ecKey(t), "spiffe://example.org/ns/shop/sa/db"), 0)
	wantCode(t, "csr naming another identity than the impersonated one", err, codes.InvalidArgument)

	if got := counterValue(f.c.metrics.csrs.WithLabelValues(resultDenied)); got != 5 {
		t.Errorf("denied counter %v, want 5", got)
	}
}

func TestNodeImpersonationRefusesNonNodes(t *testing.T) {
	f := newNodeFixture(t, nil)
	ctx := context.Background()

	// A workload certificate (web, which does run on node-1).
	key := ecKey(t)
	web, err := f.c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/frontend/sa/web"), PublicKey: key.Public(), Method: MethodMTLS})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ask(f.as(&tls.Certificate{Certificate: [][]byte{web.Leaf.Raw}, PrivateKey: key, Leaf: web.Leaf}), "spiffe://example.org/ns/frontend/sa/web")
	wantCode(t, "workload identity asking to impersonate", err, codes.PermissionDenied)

	// A node's join token enrols the node only; impersonation needs its
	// certificate. The token is not spent by the refusal.
	tok, err := f.c.Tokens().CreateNode("node-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	byToken := dial(t, f.c, f.addr, withToken(tok.String()))
	_, err = f.ask(byToken, "spiffe://example.org/ns/frontend/sa/web")
	wantCode(t, "node join token asking to impersonate", err, codes.PermissionDenied)
	if _, err := byToken.CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0); err != nil {
		t.Errorf("node token after a refused impersonation: %v", err)
	}

	// A workload join token cannot yield a node identity.
	wtok, err := f.c.Tokens().Create("frontend", "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, f.c, f.addr, withToken(wtok.String())).CreateCertificate(ctx, makeCSR(t, ecKey(t), "spiffe://example.org/ns/ward-system/sa/ward-node/node/node-1"), 0)
	wantCode(t, "workload token asking for a node identity", err, codes.InvalidArgument)
	if _, err := f.c.Tokens().Create("ward-system", NodeServiceAccount, time.Hour); !IsReserved(err) {
		t.Errorf("workload token for ward-system/ward-node: %v, want reserved", err)
	}
	if _, err := f.c.Tokens().CreateNode("Node_1", time.Hour); err == nil {
		t.Error("node token for an invalid node name was minted")
	}
}

func TestNodeImpersonationWithoutPlacement(t *testing.T) {
	f := newNodeFixture(t, func(cfg *Config) { cfg.Placement = nil })
	_, err := f.ask(f.as(f.enrolNode("node-1")), "spiffe://example.org/ns/frontend/sa/web")
	wantCode(t, "no placement source", err, codes.PermissionDenied)
}

// TestNodeRateLimit: a node's requests are charged to its node identity;
// another node keeps its own budget.
func TestNodeRateLimit(t *testing.T) {
	f := newNodeFixture(t, func(cfg *Config) {
		cfg.Limits.NodePerSecond, cfg.Limits.NodeBurst = 0.001, 2
		cfg.Placement = fakePlacement{"node-1": {"frontend/web"}, "node-2": {"frontend/web"}}
	})
	node1, node2 := f.as(f.enrolNode("node-1")), f.as(f.enrolNode("node-2"))
	for i := range 2 {
		if _, err := f.ask(node1, "spiffe://example.org/ns/frontend/sa/web"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	_, err := f.ask(node1, "spiffe://example.org/ns/frontend/sa/web")
	wantCode(t, "node-1 over its budget", err, codes.ResourceExhausted)
	if _, err := f.ask(node2, "spiffe://example.org/ns/frontend/sa/web"); err != nil {
		t.Errorf("node-2 with its own budget: %v", err)
	}
}

func TestNodeID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id, err := NodeID(td, "ward-system", "node-1.zone-a")
	if err != nil || id.String() != "spiffe://example.org/ns/ward-system/sa/ward-node/node/node-1.zone-a" {
		t.Fatalf("NodeID = %v, %v", id, err)
	}
	if n, ok := ParseNodeID(id, td, "ward-system"); !ok || n != "node-1.zone-a" {
		t.Errorf("ParseNodeID = %q, %v", n, ok)
	}
	for _, s := range []string{
		"spiffe://example.org/ns/ward-system/sa/ward-node",
		"spiffe://example.org/ns/other/sa/ward-node/node/n",
		"spiffe://example.org/ns/ward-system/sa/ward-node/node/a/b",
		"spiffe://other.org/ns/ward-system/sa/ward-node/node/n",
		"spiffe://example.org/ns/ward-system/sa/ward-node/node/UPPER",
	} {
		if n, ok := ParseNodeID(mustID(t, s), td, "ward-system"); ok {
			t.Errorf("ParseNodeID(%s) = %q, want not a node", s, n)
		}
	}
	if _, err := mesh.IdentityFromID(id); err == nil {
		t.Error("a node identity parses as a workload identity")
	}
}

// TestNodeCertificateIsNoWorkload: a node certificate does not open a
// workload's xDS or ext_authz stream on the secure port.
func TestNodeCertificateIsNoWorkload(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: time.Now()}, nil)
	id, err := NodeID(c.td, "ward-system", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.Sign(Params{ID: id, PublicKey: ecKey(t).Public(), Method: MethodJoinToken})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.ChainIdentity([][]*x509.Certificate{{iss.Leaf, c.Roots()[0]}}); err == nil {
		t.Errorf("node certificate accepted as workload %v", got)
	}
}

// FuzzNodeID: an identity is a node identity only in the exact form
// NodeID builds, and never also a workload identity.
func FuzzNodeID(f *testing.F) {
	f.Add("/ns/ward-system/sa/ward-node/node/node-1")
	f.Add("/ns/ward-system/sa/ward-node/node/a.b")
	f.Add("/ns/ward-system/sa/ward-node")
	f.Add("/ns/ward-system/sa/ward-node/node/a/b")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	f.Fuzz(func(t *testing.T, path string) {
		id, err := spiffeid.FromPath(td, path)
		if err != nil {
			return
		}
		node, ok := ParseNodeID(id, td, "ward-system")
		if !ok {
			return
		}
		back, err := NodeID(td, "ward-system", node)
		if err != nil || back != id {
			t.Fatalf("ParseNodeID(%s) = %q, but NodeID gives %v, %v", id, node, back, err)
		}
		if _, err := mesh.IdentityFromID(id); err == nil {
			t.Fatalf("%s is both a node and a workload identity", id)
		}
	})
}

// In Kubernetes the node proxy's own service-account token yields the
// identity of the node the review names, and nothing else does.
func TestNodeTokenReview(t *testing.T) {
	nodeUser := func(ns string, nodes ...string) authnv1.TokenReviewStatus {
		st := authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"ward-ca"},
			User: authnv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + NodeServiceAccount}}
		if nodes != nil {
			st.User.Extra = map[string]authnv1.ExtraValue{ExtraNodeName: nodes}
		}
		return st
	}
	rev := fakeReviewer{
		"n1":        nodeUser("ward-system", "n1"),
		"no-node":   nodeUser("ward-system"),
		"bad-node":  nodeUser("ward-system", "N_1"),
		"two-nodes": nodeUser("ward-system", "n1", "n2"),
		"other-ns":  nodeUser("shop", "n1"),
	}
	c := newTestCA(t, &fakeClock{now: time.Now().Truncate(time.Second)}, func(c *Config) { c.TokenReviewer = rev })
	addr := serve(t, c)
	ctx := context.Background()
	const n1 = "spiffe://example.org/ns/ward-system/sa/ward-node/node/n1"
	chain, err := dial(t, c, addr, withToken("n1")).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
	if err != nil {
		t.Fatalf("node token: %v", err)
	}
	if certs, _, _ := SplitChain(chain); certs[0].URIs[0].String() != n1 {
		t.Errorf("node token issued %v, want %s", certs[0].URIs, n1)
	}
	_, err = dial(t, c, addr, withToken("n1")).CreateCertificate(ctx, makeCSR(t, ecKey(t), "spiffe://example.org/ns/ward-system/sa/ward-node/node/n2"), 0)
	wantCode(t, "node token asking for another node", err, codes.InvalidArgument)
	for _, tok := range []string{"no-node", "bad-node", "two-nodes"} {
		_, err := dial(t, c, addr, withToken(tok)).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
		wantCode(t, tok, err, codes.Unauthenticated)
	}
	// ward-node outside the control plane's namespace is a workload.
	chain, err = dial(t, c, addr, withToken("other-ns")).CreateCertificate(ctx, makeCSR(t, ecKey(t)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if certs, _, _ := SplitChain(chain); certs[0].URIs[0].String() != "spiffe://example.org/ns/shop/sa/ward-node" {
		t.Errorf("shop/ward-node token issued %v, want its workload identity", certs[0].URIs)
	}
	_, err = dial(t, c, addr, withToken("other-ns")).CreateCertificate(ctx, makeCSR(t, ecKey(t), "spiffe://example.org/ns/shop/sa/ward-node/node/n1"), 0)
	wantCode(t, "workload token asking for a node identity", err, codes.InvalidArgument)
}
