package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardmesh/ward/ca/caclient"
)

// RemoteConfig configures a RemoteCA.
type RemoteConfig struct {
	// Addr is the certificate service of `ward serve` (its 15012 port).
	Addr string
	// Node is this node's name; NodeID the identity the CA binds to it
	// (ca.NodeID: spiffe://<td>/ns/ward-system/sa/ward-node/node/<node>).
	NodeID spiffeid.ID
	// ServerID is the control plane's identity, which the CA's serving
	// certificate must carry.
	ServerID spiffeid.ID
	// Roots is the initial trust in the CA (`ward ca bundle`); later
	// bundles come with each certificate.
	Roots []*x509.Certificate
	// JoinToken enrols the node (`ward ca token create --node`); it is
	// spent once, then the node renews its certificate by mTLS.
	JoinToken string
	// TTL of the node certificate asked for (0: the CA's default).
	TTL   time.Duration
	Clock Clock
	Log   *slog.Logger
}

// RemoteCA obtains workload certificates from Ward's certificate service
// as this node (Istio's ztunnel rule): it authenticates with its node
// certificate and names the workload in the request's
// ImpersonatedIdentity; the CA issues only workloads placed on this node.
// Keys, the node's and the workloads', are made here and never sent.
type RemoteCA struct {
	cfg    RemoteConfig
	bundle *x509bundle.Bundle

	mu     sync.Mutex
	cert   *tls.Certificate // the node certificate
	due    time.Time        // when it is renewed
	client *caclient.Client // authenticated by cert
}

var _ Issuer = (*RemoteCA)(nil)

// NewRemoteCA enrols the node with its join token and connects as it.
func NewRemoteCA(ctx context.Context, cfg RemoteConfig) (*RemoteCA, error) {
	if cfg.Addr == "" || cfg.NodeID.IsZero() || cfg.ServerID.IsZero() || len(cfg.Roots) == 0 || cfg.JoinToken == "" {
		return nil, errors.New("node ca: Addr, NodeID, ServerID, Roots and JoinToken are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &RemoteCA{cfg: cfg, bundle: x509bundle.FromX509Authorities(cfg.NodeID.TrustDomain(), cfg.Roots)}
	if err := r.renew(ctx, cfg.JoinToken); err != nil {
		return nil, fmt.Errorf("node ca: enrol %s: %w", cfg.NodeID, err)
	}
	return r, nil
}

// NodeCertificate returns the node's current certificate.
func (r *RemoteCA) NodeCertificate() *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert.Leaf
}

// Close closes the connection to the CA.
func (r *RemoteCA) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client.Close()
}

// Issue asks the CA for id's certificate with the node proxy's CSR.
func (r *RemoteCA) Issue(ctx context.Context, id spiffeid.ID, csrDER []byte, ttl time.Duration) ([]string, error) {
	r.mu.Lock()
	cl := r.client
	r.mu.Unlock()
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	return cl.CreateCertificateFor(ctx, id, csr, ttl)
}

// Run renews the node certificate at half its lifetime (retrying a
// failure after retryAfter) until ctx ends.
func (r *RemoteCA) Run(ctx context.Context) error {
	for {
		r.mu.Lock()
		wait := r.due.Sub(r.cfg.Clock.Now())
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-r.cfg.Clock.After(max(wait, time.Second)):
		}
		if err := r.renew(ctx, ""); err != nil {
			r.cfg.Log.Error("node certificate renewal failed", "spiffe_id", r.cfg.NodeID.String(), "error", err)
			r.mu.Lock()
			r.due = r.cfg.Clock.Now().Add(retryAfter)
			r.mu.Unlock()
		}
	}
}

// renew obtains a node certificate, by token when given or else by the
// current certificate, and reconnects with it.
func (r *RemoteCA) renew(ctx context.Context, token string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	cl, err := r.dial(token, r.current())
	if err != nil {
		return err
	}
	chain, err := cl.CreateCertificate(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), r.cfg.TTL)
	cl.Close()
	if err != nil {
		return err
	}
	cert, err := r.check(chain, key)
	if err != nil {
		return err
	}
	next, err := r.dial("", cert)
	if err != nil {
		return err
	}
	r.install(cert, next)
	r.cfg.Log.Info("node certificate issued", "spiffe_id", r.cfg.NodeID.String(), "expires", cert.Leaf.NotAfter)
	return nil
}

func (r *RemoteCA) current() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// install switches to a new certificate and connection; the old
// connection is closed (calls in flight on it finish or fail and retry).
func (r *RemoteCA) install(cert *tls.Certificate, cl *caclient.Client) {
	r.mu.Lock()
	old := r.client
	r.cert, r.client, r.due = cert, cl, renewAt(cert.Leaf, r.cfg.Clock.Now())
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// check verifies a response is a valid SVID for exactly the node's
// identity and adopts its trust bundle.
func (r *RemoteCA) check(chain []string, key *ecdsa.PrivateKey) (*tls.Certificate, error) {
	certs, roots, err := caclient.SplitChain(chain)
	if err != nil {
		return nil, err
	}
	b := x509bundle.FromX509Authorities(r.cfg.NodeID.TrustDomain(), roots)
	got, _, err := x509svid.Verify(certs, b, x509svid.WithTime(r.cfg.Clock.Now()))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if got != r.cfg.NodeID {
		return nil, fmt.Errorf("node certificate names %s, want %s", got, r.cfg.NodeID)
	}
	r.bundle.SetX509Authorities(roots)
	tc := &tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

func (r *RemoteCA) dial(token string, cert *tls.Certificate) (*caclient.Client, error) {
	cfg := caclient.Config{Addr: r.cfg.Addr, ServerID: r.cfg.ServerID, Clock: r.cfg.Clock, Token: token,
		Bundle: func() *x509bundle.Bundle { return r.bundle }}
	if token == "" {
		cfg.Certificate = cert
	}
	return caclient.Dial(cfg)
}
