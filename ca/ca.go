package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh"
)

// Defaults for Config.
const (
	DefaultWorkloadTTL = 24 * time.Hour
	DefaultMaxTTL      = 90 * 24 * time.Hour
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	DefaultMaxCSRBytes = 16 << 10
	DefaultAudience    = "ward-ca"
	// DefaultReconcileInterval is how often Run re-evaluates rotation
	// phases and pending rotation requests.
	DefaultReconcileInterval = 10 * time.Second
)

// Config configures a CA. StateDir and TrustDomain are required unless
// Store is set (then StateDir is still used for join tokens and rotation
// requests).
type Config struct {
	// StateDir holds ca/ca.json (root keys, 0600), tokens/ and rotation
	// requests.
	StateDir    string
	TrustDomain string
	// Store persists the root state; default is a FileStore in StateDir.
	// The Kubernetes source supplies a Secret-backed one.
	Store Store
	// PluginDir, when set, switches to plug-in mode: the signing
	// intermediate is loaded from Istio's cacerts layout there and
	// reloaded when the files change.
	PluginDir string
	Clock     Clock
	Log       *slog.Logger
	Metrics   prometheus.Registerer

	DefaultTTL time.Duration // workload certificate TTL when none is asked for
	MaxTTL     time.Duration // requested TTLs are clamped to this
	RootTTL    time.Duration // lifetime of generated roots
	// RootKey is the key algorithm for generated roots: "ecdsa-p256"
	// (default) or "rsa-2048".
	RootKey string
	// RotationOverlap is how long a staged root is published in the bundle
	// before it starts signing. It must exceed the agents' renewal interval
	// so every workload trusts the new root before it meets a leaf signed
	// by it; the default is DefaultTTL.
	RotationOverlap time.Duration
	MaxCSRBytes     int

	// TokenReviewer authenticates Kubernetes service-account tokens; nil
	// disables that method. Audience defaults to "ward-ca".
	TokenReviewer TokenReviewer
	Audience      string

	// ServerIdentity is the control plane's own identity, used for the
	// 15012 serving certificate (default ns ward-system, sa ward).
	ServerIdentity mesh.Identity
	// ServerNames are extra DNS names or IP addresses for the serving
	// certificate (the workload certificates never carry them).
	ServerNames []string
	// ReconcileInterval is how often Run checks rotation phases.
	ReconcileInterval time.Duration

	// localState is set by setDefaults when the state is the default
	// FileStore.
	localState bool

	// IssuanceLog records every issued certificate (the inventory of ward
	// audit and /debug/ca/issued). Default: a FileLog at
	// IssuedLogPath(StateDir) when the state is on local disk (Store
	// unset), else a MemoryLog, which in Kubernetes mode holds only the
	// certificates this replica issued.
	IssuanceLog IssuanceLog
	// MaxIssuedRecords bounds the default issuance log
	// (DefaultMaxIssuedRecords).
	MaxIssuedRecords int

	// Limits bounds the certificate service's work per second, in
	// flight, per identity and per source (see Limits for defaults).
	Limits Limits
	// AllowReserved lists "namespace/serviceaccount" identities in the
	// control plane's namespace that callers may still obtain; every other
	// identity there, and always the control plane's own, is refused.
	AllowReserved []string
	// Placement says which workloads run on which node; a node proxy is
	// issued a workload's certificate only for workloads on its node. Nil
	// refuses every impersonation request.
	Placement Placement
}

func (c *Config) setDefaults() error {
	if c.TrustDomain == "" {
		return errors.New("ca: trust domain is required")
	}
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		return fmt.Errorf("ca: trust domain %q: %w", c.TrustDomain, err)
	}
	if c.StateDir == "" {
		return errors.New("ca: state dir is required")
	}
	if c.Store == nil {
		c.Store = FileStore{Path: filepath.Join(c.StateDir, "ca", "ca.json")}
		c.localState = true
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	setDur(&c.DefaultTTL, DefaultWorkloadTTL)
	setDur(&c.MaxTTL, DefaultMaxTTL)
	setDur(&c.RootTTL, DefaultRootTTL)
	setDur(&c.RotationOverlap, c.DefaultTTL)
	setDur(&c.ReconcileInterval, DefaultReconcileInterval)
	if c.DefaultTTL > c.MaxTTL {
		c.DefaultTTL = c.MaxTTL
	}
	if c.MaxCSRBytes <= 0 {
		c.MaxCSRBytes = DefaultMaxCSRBytes
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.RootKey == "" {
		c.RootKey = KeyECDSAP256
	}
	if c.ServerIdentity == (mesh.Identity{}) {
		c.ServerIdentity = mesh.ControlPlaneIdentity("")
	}
	c.ServerIdentity.TrustDomain = c.TrustDomain
	if _, err := c.ServerIdentity.SPIFFEID(); err != nil {
		return fmt.Errorf("ca: server identity: %w", err)
	}
	c.Limits.setDefaults()
	return nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// CA issues workload identities. It is safe for concurrent use.
type CA struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	td      spiffeid.TrustDomain
	metrics *metrics
	tokens  *TokenStore
	// reserved is the control plane's reserved identities; limits and
	// logLimit bound the certificate service's work and its logs.
	reserved *Reservation
	limits   *limiter
	logLimit *logLimiter

	// mu guards transitions of auth against in-flight signing: Sign holds
	// it shared, rotation phase changes hold it exclusively, so no leaf is
	// signed by a root after that root's drop time was computed.
	mu    sync.RWMutex
	auth  atomic.Pointer[authority]
	state *State // self-signed mode only; guarded by stateMu
	// stateMu serialises state persistence (reservations, phase changes).
	stateMu sync.Mutex

	changeMu sync.Mutex
	changed  chan struct{}

	server    serverCert
	pluginSum [32]byte // guarded by mu

	// testHook, when set, runs at named crash points (see rotate.go).
	testHook func(point string) error
}

// New loads the CA's state (creating and persisting a root on first start)
// or, in plug-in mode, the cacerts intermediate.
func New(cfg Config) (*CA, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &CA{cfg: cfg, log: cfg.Log.With("component", "ca"), clock: cfg.Clock, changed: make(chan struct{})}
	c.td = spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	res, err := NewReservation(cfg.ServerIdentity, cfg.AllowReserved)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	c.reserved = res
	c.tokens = NewTokenStore(TokenDir(cfg.StateDir), cfg.Clock).WithReservation(res)
	c.limits = newLimiter(cfg.Limits, cfg.Clock)
	c.logLimit = newLogLimiter(cfg.Clock, cfg.Limits.LogEvery)
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	if err := c.openIssuanceLog(); err != nil {
		return nil, err
	}
	if cfg.PluginDir != "" {
		err = c.loadPlugin()
	} else {
		err = c.loadOrCreate(context.Background())
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TrustDomain returns the CA's trust domain.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// Tokens returns the join-token store (used by `ward ca token create`).
func (c *CA) Tokens() *TokenStore { return c.tokens }

// Roots returns the current trust bundle's roots.
func (c *CA) Roots() []*x509.Certificate { return c.current().roots }

// BundlePEM returns the current trust bundle as concatenated PEM.
func (c *CA) BundlePEM() []byte { return c.current().bundlePEM }

// Changed returns a channel closed at the next change of the signing
// authority or the trust bundle.
func (c *CA) Changed() <-chan struct{} {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	return c.changed
}

func (c *CA) current() *authority { return c.auth.Load() }

// publish installs a new authority and wakes Changed waiters.
func (c *CA) publish(a *authority) {
	c.auth.Store(a)
	c.metrics.observeAuthority(a, c.phase())
	c.changeMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.changeMu.Unlock()
}

// Run re-evaluates rotation phases and pending rotation requests on every
// ReconcileInterval and, in plug-in mode, reloads cacerts when they change.
// It returns when ctx ends.
func (c *CA) Run(ctx context.Context) error {
	if c.cfg.PluginDir != "" {
		return c.watchPlugin(ctx)
	}
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if err := c.Reconcile(ctx); err != nil {
			c.log.Error("ca reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
