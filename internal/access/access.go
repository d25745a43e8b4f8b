// Package access decides who may read the control plane's debug
// endpoints (/debug/... on 15014): the caller is authenticated (a
// loopback connection, a verified Ward client certificate on an mTLS
// listener, or a Kubernetes service-account token checked by
// TokenReview), and a caller that is not an operator sees only its own
// namespace. Handlers read the Caller from the request context.
package access

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/wardmesh/ward/mesh"
)

// Caller is who is reading a debug page.
type Caller struct {
	// Operator callers see everything: loopback, or an identity listed in
	// Config.Operators.
	Operator bool
	// Namespace is the only namespace a non-operator sees.
	Namespace string
	// Name is for logs: "loopback", a SPIFFE ID or a Kubernetes user.
	Name string
}

// Sees reports whether the caller may see objects of namespace ns.
func (c Caller) Sees(ns string) bool { return c.Operator || (c.Namespace != "" && c.Namespace == ns) }

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext returns the caller of a request, if a Gate admitted it.
func FromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Config holds the authenticators; a nil one is not offered.
type Config struct {
	Log *slog.Logger
	// Certificate authenticates the verified client certificate chains of
	// a TLS request (ca.CA.ChainIdentity).
	Certificate func(chains [][]*x509.Certificate) (mesh.Identity, error)
	// Token authenticates a bearer token (Kubernetes TokenReview).
	Token func(ctx context.Context, token string) (mesh.Identity, error)
	// Operators are the identities that see everything besides loopback
	// callers.
	Operators []mesh.Identity
}

// Gate admits debug requests.
type Gate struct{ cfg Config }

// New returns a gate.
func New(cfg Config) *Gate {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Gate{cfg: cfg}
}

// ErrUnauthenticated is wrapped by authentication failures.
var ErrUnauthenticated = errors.New("debug endpoint: caller not authenticated")

// Authenticate finds the caller of r.
func (g *Gate) Authenticate(r *http.Request) (Caller, error) {
	if isLoopback(r.RemoteAddr) {
		return Caller{Operator: true, Name: "loopback"}, nil
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && g.cfg.Certificate != nil {
		id, err := g.cfg.Certificate(r.TLS.VerifiedChains)
		if err != nil {
			return Caller{}, fmt.Errorf("%w: client certificate: %w", ErrUnauthenticated, err)
		}
		return g.caller(id), nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && g.cfg.Token != nil {
		id, err := g.cfg.Token(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			return Caller{}, fmt.Errorf("%w: token: %w", ErrUnauthenticated, err)
		}
		return g.caller(id), nil
	}
	return Caller{}, fmt.Errorf("%w: not loopback and no credential", ErrUnauthenticated)
}

func (g *Gate) caller(id mesh.Identity) Caller {
	c := Caller{Namespace: id.Namespace, Name: id.Namespace + "/" + id.ServiceAccount}
	for _, op := range g.cfg.Operators {
		if op.Namespace == id.Namespace && op.ServiceAccount == id.ServiceAccount {
			c.Operator = true
		}
	}
	return c
}

// Scoped serves h to any authenticated caller, with the Caller in the
// request context for h to filter by (Caller.Sees).
func (g *Gate) Scoped(h http.Handler) http.Handler { return g.wrap(h, false) }

// Operator serves h only to operators.
func (g *Gate) Operator(h http.Handler) http.Handler { return g.wrap(h, true) }

func (g *Gate) wrap(h http.Handler, operator bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := g.Authenticate(r)
		if err != nil {
			g.cfg.Log.Warn("debug request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			http.Error(w, "authentication required: call from loopback, with a Ward client certificate, or a Kubernetes bearer token", http.StatusUnauthorized)
			return
		}
		if operator && !c.Operator {
			g.cfg.Log.Warn("debug request refused: operator only", "path", r.URL.Path, "caller", c.Name)
			http.Error(w, "forbidden: this debug page is for operators only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServiceAccountUser parses a Kubernetes service-account user name,
// "system:serviceaccount:<ns>:<sa>".
func ServiceAccountUser(u string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(u, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

// Reviewer checks a Kubernetes service-account token (kube.TokenReviewer:
// the TokenReview API, pod-bound tokens only).
type Reviewer interface {
	Review(ctx context.Context, token string, audiences []string) (*authnv1.TokenReview, error)
}

// TokenReview returns a Config.Token that authenticates a bearer token
// with r (the API server's default audience) as its service account.
func TokenReview(r Reviewer) func(ctx context.Context, token string) (mesh.Identity, error) {
	return func(ctx context.Context, token string) (mesh.Identity, error) {
		tr, err := r.Review(ctx, token, nil)
		if err != nil {
			return mesh.Identity{}, err
		}
		if !tr.Status.Authenticated {
			return mesh.Identity{}, fmt.Errorf("token not authenticated: %s", tr.Status.Error)
		}
		ns, sa, ok := ServiceAccountUser(tr.Status.User.Username)
		if !ok {
			return mesh.Identity{}, fmt.Errorf("user %q is not a service account", tr.Status.User.Username)
		}
		return mesh.Identity{Namespace: ns, ServiceAccount: sa}, nil
	}
}
