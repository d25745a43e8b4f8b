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
	"os"
	"path/filepath"
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
	// StateDir, when set, keeps the node key and certificate (node.key
	// 0600, node.pem) so a restarted node proxy renews by its certificate
	// instead of needing a new join token; then JoinToken may be empty.
	StateDir string
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
	if cfg.Addr == "" || cfg.NodeID.IsZero() || cfg.ServerID.IsZero() || len(cfg.Roots) == 0 {
		return nil, errors.New("node ca: Addr, NodeID, ServerID and Roots are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &RemoteCA{cfg: cfg, bundle: x509bundle.FromX509Authorities(cfg.NodeID.TrustDomain(), cfg.Roots)}
	if cert, err := r.load(); err == nil {
		// Renew by the saved certificate at once: it proves the CA still
		// accepts it and starts a fresh lifetime.
		r.cert = cert
		if err := r.renew(ctx, ""); err == nil {
			return r, nil
		} else if cfg.JoinToken == "" {
			return nil, fmt.Errorf("node ca: renew %s from %s: %w", cfg.NodeID, cfg.StateDir, err)
		}
	} else if cfg.JoinToken == "" {
		return nil, fmt.Errorf("node ca: no join token and no usable node certificate: %w", err)
	}
	r.cert = nil
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

// Issue asks the CA for id's certificate with the node proxy's CSR. A
// call that fails because a node renewal replaced its connection
// meanwhile is made once more on the new one.
func (r *RemoteCA) Issue(ctx context.Context, id spiffeid.ID, csrDER []byte, ttl time.Duration) ([]string, error) {
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	cl := r.conn()
	chain, err := cl.CreateCertificateFor(ctx, id, csr, ttl)
	if err != nil && ctx.Err() == nil {
		if next := r.conn(); next != cl {
			return next.CreateCertificateFor(ctx, id, csr, ttl)
		}
	}
	return chain, err
}

func (r *RemoteCA) conn() *caclient.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client
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
	if err := r.save(cert, key); err != nil {
		r.cfg.Log.Error("node certificate not saved; a restart needs a new join token", "dir", r.cfg.StateDir, "error", err)
	}
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

// Files in RemoteConfig.StateDir.
const (
	nodeKeyFile  = "node.key"
	nodeCertFile = "node.pem"
)

// save writes the node key (0600) and certificate chain, each replaced
// atomically, the key first.
func (r *RemoteCA) save(cert *tls.Certificate, key *ecdsa.PrivateKey) error {
	if r.cfg.StateDir == "" {
		return nil
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.cfg.StateDir, 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(r.cfg.StateDir, nodeKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	var chain []byte
	for _, c := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return writeAtomic(filepath.Join(r.cfg.StateDir, nodeCertFile), chain)
}

// load reads the saved node certificate and key and accepts them only as
// a valid SVID for exactly this node's identity under the trust roots,
// whose key matches.
func (r *RemoteCA) load() (*tls.Certificate, error) {
	if r.cfg.StateDir == "" {
		return nil, errors.New("no state dir")
	}
	certPEM, err := os.ReadFile(filepath.Join(r.cfg.StateDir, nodeCertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(r.cfg.StateDir, nodeKeyFile))
	if err != nil {
		return nil, err
	}
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("saved node certificate: %w", err)
	}
	got, _, err := x509svid.ParseAndVerify(tc.Certificate, r.bundle, x509svid.WithTime(r.cfg.Clock.Now()))
	if err != nil {
		return nil, fmt.Errorf("saved node certificate: %w", err)
	}
	if got != r.cfg.NodeID {
		return nil, fmt.Errorf("saved node certificate names %s, want %s", got, r.cfg.NodeID)
	}
	if tc.Leaf, err = x509.ParseCertificate(tc.Certificate[0]); err != nil {
		return nil, err
	}
	return &tc, nil
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
