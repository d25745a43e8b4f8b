package ca

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	authnv1 "k8s.io/api/authentication/v1"

	"github.com/wardmesh/ward/ca/caclient"
	"github.com/wardmesh/ward/mesh"
)

// Authentication methods, as used in logs and metric labels.
const (
	MethodMTLS      = caclient.MethodMTLS
	MethodK8sJWT    = caclient.MethodK8sJWT
	MethodJoinToken = caclient.MethodJoinToken
	// MethodControlPlane marks the CA's own serving certificate in the
	// issuance log; no caller authenticates with it.
	MethodControlPlane = "control-plane"
	// MethodNodeProxy marks, in the issuance log, a workload certificate
	// issued to the node proxy of the workload's node.
	MethodNodeProxy = "node-proxy"
)

// errNoCredential means an authenticator found nothing it could check; the
// next one is tried.
var errNoCredential = errors.New("no credential for this method")

// Caller is an authenticated caller: the identity is all the service will
// ever put in a certificate.
type Caller struct {
	ID     spiffeid.ID
	Method string
	// Node is set for a node proxy: the node its identity is bound to.
	Node string
	// commit finalises the authentication once the certificate is signed
	// (consumes a join token); nil when there is nothing to do.
	commit func() error
}

// Authenticator authenticates the caller of an RPC from its context (peer
// certificate, metadata). It returns errNoCredential when the caller did
// not present its kind of credential.
type Authenticator interface {
	Method() string
	Authenticate(ctx context.Context) (*Caller, error)
}

// TokenReviewer checks a Kubernetes service-account token, as the
// TokenReview API does. The Kubernetes source implements it with client-go.
type TokenReviewer interface {
	Review(ctx context.Context, token string, audiences []string) (*authnv1.TokenReview, error)
}

// bearer returns the bearer token from the "authorization" metadata.
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// certAuthenticator accepts a mesh client certificate verified by the TLS
// handshake whose root is still in the current bundle (renewals).
type certAuthenticator struct{ ca *CA }

func (certAuthenticator) Method() string { return MethodMTLS }

func (a certAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errNoCredential
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		return nil, errNoCredential
	}
	chain := ti.State.VerifiedChains[0]
	leaf, root := chain[0], chain[len(chain)-1]
	if !a.ca.current().hasRoot(root) {
		return nil, errors.New("client certificate root is no longer trusted")
	}
	if now := a.ca.clock.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return nil, errors.New("client certificate is not valid now")
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if n, ok := a.ca.nodeCaller(id, MethodMTLS, nil); ok {
		return n, nil
	}
	return a.ca.caller(id, MethodMTLS, nil)
}

// kubeAuthenticator accepts a Kubernetes service-account JWT through a
// TokenReview with the CA's audience.
type kubeAuthenticator struct {
	ca       *CA
	reviewer TokenReviewer
}

func (kubeAuthenticator) Method() string { return MethodK8sJWT }

func (a kubeAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	tok := bearer(ctx)
	if tok == "" || IsJoinToken(tok) {
		return nil, errNoCredential
	}
	aud := a.ca.cfg.Audience
	tr, err := a.reviewer.Review(ctx, tok, []string{aud})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if st.Error != "" || !st.Authenticated {
		return nil, fmt.Errorf("token review: not authenticated (%q)", st.Error)
	}
	if !slices.Contains(st.Audiences, aud) {
		return nil, fmt.Errorf("token review: audiences %v lack %q", st.Audiences, aud)
	}
	ns, sa, ok := serviceAccountUser(st.User.Username)
	if !ok {
		return nil, fmt.Errorf("token review: user %q is not a service account", st.User.Username)
	}
	if ns == a.ca.cfg.ServerIdentity.Namespace && sa == NodeServiceAccount {
		return a.node(st.User)
	}
	id, err := mesh.Identity{TrustDomain: a.ca.cfg.TrustDomain, Namespace: ns, ServiceAccount: sa}.SPIFFEID()
	if err != nil {
		return nil, err
	}
	return a.ca.caller(id, MethodK8sJWT, nil)
}

// ExtraNodeName is the TokenReview user extra naming the node of the pod
// a token is bound to (Kubernetes 1.30+; the kube reviewer fills it from
// the bound pod's spec.nodeName on older API servers).
const ExtraNodeName = "authentication.kubernetes.io/node-name"

// node authenticates the node proxy's own service account (Istio's
// ztunnel rule): the token names no workload but the node its pod is
// bound to, and yields that node's identity, never the account's
// workload identity (the control plane's namespace is reserved).
func (a kubeAuthenticator) node(u authnv1.UserInfo) (*Caller, error) {
	v := u.Extra[ExtraNodeName]
	if len(v) != 1 || v[0] == "" {
		return nil, fmt.Errorf("token review: %s token is not bound to a pod scheduled on a node", u.Username)
	}
	id, err := NodeID(a.ca.td, a.ca.cfg.ServerIdentity.Namespace, v[0])
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	n, _ := a.ca.nodeCaller(id, MethodK8sJWT, nil)
	return n, nil
}

// serviceAccountUser splits "system:serviceaccount:<ns>:<sa>".
func serviceAccountUser(u string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(u, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

// joinAuthenticator accepts a one-time join token; the token is consumed
// only when a certificate is actually issued.
type joinAuthenticator struct{ ca *CA }

func (joinAuthenticator) Method() string { return MethodJoinToken }

func (a joinAuthenticator) Authenticate(ctx context.Context) (*Caller, error) {
	raw := bearer(ctx)
	if !IsJoinToken(raw) {
		return nil, errNoCredential
	}
	t, err := ParseJoinToken(raw)
	if err != nil {
		return nil, err
	}
	g, err := a.ca.tokens.check(t)
	if err != nil {
		return nil, fmt.Errorf("join token %s: %w", t.ID, err)
	}
	commit := func() error { return a.ca.tokens.Consume(t) }
	if g.Node != "" {
		id, err := NodeID(a.ca.td, a.ca.cfg.ServerIdentity.Namespace, g.Node)
		if err != nil {
			return nil, fmt.Errorf("join token %s: %w", t.ID, err)
		}
		n, _ := a.ca.nodeCaller(id, MethodJoinToken, commit)
		return n, nil
	}
	ns, sa := g.Namespace, g.Account
	id, err := mesh.Identity{TrustDomain: a.ca.cfg.TrustDomain, Namespace: ns, ServiceAccount: sa}.SPIFFEID()
	if err != nil {
		return nil, err
	}
	return a.ca.caller(id, MethodJoinToken, commit)
}

// caller checks id is a workload identity in the CA's trust domain that
// is not reserved for the control plane. Every authenticator ends here, so
// none can yield a reserved identity.
func (c *CA) caller(id spiffeid.ID, method string, commit func() error) (*Caller, error) {
	if id.TrustDomain() != c.td {
		return nil, fmt.Errorf("identity %s is outside trust domain %s", id, c.td)
	}
	wid, err := mesh.IdentityFromID(id)
	if err != nil {
		return nil, err
	}
	if err := c.reserved.Check(wid.Namespace, wid.ServiceAccount); err != nil {
		return nil, err
	}
	return &Caller{ID: id, Method: method, commit: commit}, nil
}

// authenticators returns the methods in order; the first success wins.
func (c *CA) authenticators() []Authenticator {
	as := []Authenticator{certAuthenticator{c}}
	if c.cfg.TokenReviewer != nil {
		as = append(as, kubeAuthenticator{c, c.cfg.TokenReviewer})
	}
	return append(as, joinAuthenticator{c})
}

// authenticate tries every method; the error lists why each failed.
func (c *CA) authenticate(ctx context.Context) (*Caller, error) {
	var errs []error
	for _, a := range c.authenticators() {
		caller, err := a.Authenticate(ctx)
		if err == nil {
			return caller, nil
		}
		if !errors.Is(err, errNoCredential) {
			c.metrics.authFailures.WithLabelValues(a.Method()).Inc()
			errs = append(errs, fmt.Errorf("%s: %w", a.Method(), err))
		}
	}
	if len(errs) == 0 {
		c.metrics.authFailures.WithLabelValues("none").Inc()
		return nil, errors.New("no credential presented")
	}
	return nil, errors.Join(errs...)
}
