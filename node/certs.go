package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardmesh/ward/ca"
)

// Issuer signs a certificate for a workload on this node from a CSR the
// node proxy made; it returns the chain in the Istio response order
// (leaf, intermediates, trust bundle).
type Issuer interface {
	Issue(ctx context.Context, id spiffeid.ID, csrDER []byte, ttl time.Duration) ([]string, error)
}

// MethodNodeProxy records, in the CA's issuance log, a certificate issued
// to a node proxy for a workload on its node.
const MethodNodeProxy = ca.MethodNodeProxy

// LocalCA issues from an in-process Ward CA, with no placement check:
// unit tests and `ward node --dev-ca-state-dir` only. A node proxy asks
// `ward serve` through RemoteCA, which the CA checks against the node's
// workloads.
type LocalCA struct{ CA *ca.CA }

var _ Issuer = LocalCA{}

// Issue checks the CSR's signature and signs its key for id.
func (l LocalCA) Issue(_ context.Context, id spiffeid.ID, csrDER []byte, ttl time.Duration) ([]string, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", id, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issue %s: csr signature: %w", id, err)
	}
	iss, err := l.CA.Sign(ca.Params{ID: id, PublicKey: csr.PublicKey, TTL: ttl, Method: MethodNodeProxy})
	if err != nil {
		return nil, err
	}
	return iss.Chain, nil
}

// svid is a workload certificate with its key (made here, never sent).
type svid struct {
	id      spiffeid.ID
	cert    *tls.Certificate
	roots   []*x509.Certificate
	renewAt time.Time
}

// issue makes a key and CSR for id, has it signed, and checks what came
// back: a valid SVID for exactly id under the returned bundle.
func issue(ctx context.Context, iss Issuer, id spiffeid.ID, ttl time.Duration, now time.Time) (*svid, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	chain, err := iss.Issue(ctx, id, csr, ttl)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", id, err)
	}
	certs, roots, err := ca.SplitChain(chain)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", id, err)
	}
	got, _, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(id.TrustDomain(), roots), x509svid.WithTime(now))
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", id, err)
	}
	if got != id {
		return nil, fmt.Errorf("certificate for %s names %s", id, got)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return &svid{id: id, cert: tc, roots: roots, renewAt: renewAt(certs[0], now)}, nil
}
