package extauthz

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// Reasons of the checks served over mTLS (RegisterMTLS) that are denied
// before any policy is consulted. Both answer 403 / PERMISSION_DENIED:
// the fault is the calling proxy's, not the end user's credentials.
const (
	// ReasonCallerUnauthenticated: the check did not come with a verified
	// Ward workload certificate.
	ReasonCallerUnauthenticated authz.Reason = "caller_unauthenticated"
	// ReasonCallerForbidden: the caller asked about a workload outside its
	// own namespace.
	ReasonCallerForbidden authz.Reason = "caller_forbidden"
)

// ErrCaller is wrapped by the errors of checks denied for their caller.
var ErrCaller = errors.New("ext_authz caller not permitted")

// PeerConfig configures the checks served over mTLS.
type PeerConfig struct {
	// TrustDomain is the mesh's: a caller's certificate must carry a Ward
	// workload SPIFFE ID (spiffe://<td>/ns/<ns>/sa/<sa>) in it. Required:
	// the zero value denies every check.
	TrustDomain spiffeid.TrustDomain
	// Roots returns the roots trusted now (ca.CA.Roots). A caller whose
	// verified chains all end at another root is denied, so a root that
	// rotation removed stops being trusted on connections that outlive
	// it. nil: the handshake's verification alone.
	Roots func() []*x509.Certificate
}

// RegisterMTLS adds the Authorization service to g in caller-bound mode.
// g's transport credentials must verify client certificates against the
// mesh roots (ca.CA.ServerTLSConfig: ward serve's secure port, 15012).
// A check is then decided only when its connection presented a verified
// Ward workload certificate, and only for a workload in the certificate's
// namespace: a workload (or its Envoy) asks about itself, a gateway in
// namespace N about N. Anything else is denied, never passed through:
// ReasonCallerUnauthenticated or ReasonCallerForbidden, logged and
// counted like every decision.
func (s *Server) RegisterMTLS(g grpc.ServiceRegistrar, cfg PeerConfig) {
	authv3.RegisterAuthorizationServer(g, &mtlsServer{s: s, cfg: cfg})
}

// mtlsServer is the caller-bound face of a Server.
type mtlsServer struct {
	authv3.UnimplementedAuthorizationServer
	s   *Server
	cfg PeerConfig
}

func (m *mtlsServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return m.s.check(ctx, req, m.caller)
}

// caller authenticates the peer of ctx: a TLS connection whose client
// certificate chain was verified by the handshake, ends at a root trusted
// now, and names a Ward workload of the trust domain.
func (m *mtlsServer) caller(ctx context.Context) (mesh.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return mesh.Identity{}, fmt.Errorf("%w: no peer", ErrCaller)
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return mesh.Identity{}, fmt.Errorf("%w: not a TLS connection", ErrCaller)
	}
	chain := m.trustedChain(ti.State.VerifiedChains)
	if chain == nil {
		return mesh.Identity{}, fmt.Errorf("%w: no client certificate verified against the mesh roots", ErrCaller)
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return mesh.Identity{}, fmt.Errorf("%w: client certificate: %w", ErrCaller, err)
	}
	if m.cfg.TrustDomain.IsZero() || id.TrustDomain() != m.cfg.TrustDomain {
		return mesh.Identity{}, fmt.Errorf("%w: %s is not in trust domain %q", ErrCaller, id, m.cfg.TrustDomain.Name())
	}
	ident, err := mesh.IdentityFromID(id)
	if err != nil {
		return mesh.Identity{}, fmt.Errorf("%w: %w", ErrCaller, err)
	}
	return ident, nil
}

// trustedChain returns the first verified chain whose root is trusted now.
func (m *mtlsServer) trustedChain(chains [][]*x509.Certificate) []*x509.Certificate {
	var roots []*x509.Certificate
	if m.cfg.Roots != nil {
		roots = m.cfg.Roots()
	}
	for _, c := range chains {
		if len(c) == 0 {
			continue
		}
		if m.cfg.Roots == nil || hasCert(roots, c[len(c)-1]) {
			return c
		}
	}
	return nil
}

func hasCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// callerCheck authenticates the caller of a check; nil for the plaintext
// and pinned-workload servers, which trust their callers.
type callerCheck func(context.Context) (mesh.Identity, error)

// bindCaller denies a check about a workload outside the caller's
// namespace.
func bindCaller(caller mesh.Identity, w authz.Workload) error {
	if caller.Namespace == w.Namespace {
		return nil
	}
	return fmt.Errorf("%w: %s (namespace %s) may only ask about workloads of namespace %s, not %s",
		ErrCaller, caller, caller.Namespace, caller.Namespace, w.Namespace)
}
