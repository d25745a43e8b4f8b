package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh/identity"
	"github.com/wardmesh/ward/sds"
)

// Defaults for Config.
const (
	DefaultRenewFraction = 0.5
	DefaultJitter        = 0.01
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 30 * time.Second
)

// Config configures an Agent.
type Config struct {
	// CAAddr is the certificate service address (host:port, usually 15012).
	CAAddr      string
	TrustDomain string
	// CABundlePEM is the initial trust in the CA (its root-cert.pem); the
	// bundle from each response replaces it afterwards.
	CABundlePEM []byte
	// CAServerID is the control plane identity the CA's certificate must
	// carry (default spiffe://<td>/ns/ward-system/sa/ward).
	CAServerID spiffeid.ID

	// TokenFile is a Kubernetes service-account token file, re-read on
	// each use. JoinToken is a one-time join token for enrolment.
	TokenFile string
	JoinToken string

	// TTL is the lifetime to ask for (0 = the CA's default).
	TTL time.Duration
	// RenewFraction of the lifetime after which the certificate is
	// renewed (default 0.5), ± Jitter of the lifetime (default 0.01;
	// negative for none).
	RenewFraction float64
	Jitter        float64
	BackoffMin    time.Duration
	BackoffMax    time.Duration

	// SDS, when set, receives every certificate and bundle.
	SDS *sds.Server
	// OutputDir, when set, receives cert-chain.pem, key.pem and
	// root-cert.pem for proxyless gRPC, and grpc-bootstrap.json when
	// Bootstrap is set.
	OutputDir string
	Bootstrap *GRPCBootstrapConfig

	Clock   Clock
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// Rand returns a number in [0, 1) for jitter (default math/rand/v2).
	Rand func() float64
}

// SVID is the agent's current identity.
type SVID struct {
	ID    spiffeid.ID
	Certs []*x509.Certificate // leaf first, then intermediates
	Key   crypto.Signer
	Roots []*x509.Certificate

	ChainPEM  []byte
	KeyPEM    []byte
	BundlePEM []byte
	// RenewAt is when the agent will renew it.
	RenewAt time.Time
}

// Agent keeps one workload identity fresh. It is safe for concurrent use.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	td      spiffeid.TrustDomain
	clock   Clock
	metrics *metrics

	svid      atomic.Pointer[SVID]
	bootstrap []byte // initial CA bundle
	joinUsed  atomic.Bool
	// renewMu serialises renewals, so files and SDS always get one
	// consistent certificate and key.
	renewMu sync.Mutex

	changeMu sync.Mutex
	changed  chan struct{}
}

// New checks the config and returns an agent; Run does the work.
func New(cfg Config) (*Agent, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("agent: trust domain %q: %w", cfg.TrustDomain, err)
	}
	if cfg.CAAddr == "" {
		return nil, errors.New("agent: ca address is required")
	}
	if len(cfg.CABundlePEM) == 0 {
		return nil, errors.New("agent: initial ca bundle is required")
	}
	if cfg.CAServerID.IsZero() {
		cfg.CAServerID, err = identity.ControlPlane(td.Name()).SPIFFEID()
		if err != nil {
			return nil, err
		}
	}
	setDefaults(&cfg)
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, log: cfg.Log.With("component", "agent"), td: td, clock: cfg.Clock, metrics: m,
		bootstrap: cfg.CABundlePEM, changed: make(chan struct{})}, nil
}

func setDefaults(cfg *Config) {
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		cfg.RenewFraction = DefaultRenewFraction
	}
	switch {
	case cfg.Jitter < 0: // explicitly none
		cfg.Jitter = 0
	case cfg.Jitter == 0 || cfg.Jitter >= cfg.RenewFraction:
		cfg.Jitter = DefaultJitter
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
}

// Current returns the current identity, or nil before enrolment.
func (a *Agent) Current() *SVID { return a.svid.Load() }

// Changed returns a channel closed at the next identity or bundle change.
func (a *Agent) Changed() <-chan struct{} {
	a.changeMu.Lock()
	defer a.changeMu.Unlock()
	return a.changed
}

// Run enrols, then renews at RenewAt until ctx ends. While the CA is
// unreachable it retries with exponential backoff and keeps serving the
// current certificate.
func (a *Agent) Run(ctx context.Context) error {
	backoff := a.cfg.BackoffMin
	for {
		wait := a.untilRenewal()
		if wait <= 0 {
			if err := a.Renew(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Warn("certificate renewal failed; retrying", "err", err, "retry_in", backoff)
				wait, backoff = backoff, min(2*backoff, a.cfg.BackoffMax)
			} else {
				backoff = a.cfg.BackoffMin
				wait = a.untilRenewal()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(wait):
		}
	}
}

func (a *Agent) untilRenewal() time.Duration {
	s := a.Current()
	if s == nil {
		return 0
	}
	return s.RenewAt.Sub(a.clock.Now())
}

// renewAt picks the renewal time: RenewFraction of the lifetime ± Jitter.
// The lifetime counts from when the certificate arrived, not from its
// NotBefore, which CAs backdate for clock skew.
func (a *Agent) renewAt(leaf *x509.Certificate) time.Time {
	start := a.clock.Now()
	if leaf.NotBefore.After(start) {
		start = leaf.NotBefore
	}
	life := leaf.NotAfter.Sub(start)
	j := (2*a.cfg.Rand() - 1) * a.cfg.Jitter
	return start.Add(time.Duration(float64(life) * (a.cfg.RenewFraction + j)))
}

// caBundle is what the CA's certificate is verified against: the latest
// bundle the CA sent, or the initial one.
func (a *Agent) caBundle() *x509bundle.Bundle {
	if s := a.Current(); s != nil {
		return x509bundle.FromX509Authorities(a.td, s.Roots)
	}
	b, err := x509bundle.Parse(a.td, a.bootstrap)
	if err != nil {
		return x509bundle.New(a.td)
	}
	return b
}

func (a *Agent) readToken() (string, error) {
	b, err := os.ReadFile(a.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return string(trimSpace(b)), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
