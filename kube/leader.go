package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// DefaultLease is the Lease the replicas elect a leader with.
const DefaultLease = "ward-leader"

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // Lease name, default DefaultLease
	Identity  string // this replica, e.g. the pod name; required
	Log       *slog.Logger
	// Lease timings (defaults 15 s, 10 s, 2 s as in kube-controller-manager).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Leader runs client-go leader election on a Lease. Only the leader
// creates and rotates CA state and writes the trust-bundle ConfigMaps;
// every replica serves.
type Leader struct {
	cfg LeaderConfig
	le  *leaderelection.LeaderElector

	mu      sync.Mutex
	leading bool
	elected chan struct{} // closed when this replica becomes leader
	ctx     context.Context
}

// NewLeader checks cfg; nothing happens until Run.
func NewLeader(cfg LeaderConfig) (*Leader, error) {
	if cfg.Client == nil || cfg.Identity == "" || cfg.Namespace == "" {
		return nil, errors.New("leader election: Client, Namespace and Identity are required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultLease
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	l := &Leader{cfg: cfg, elected: make(chan struct{})}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(cfg.Namespace, cfg.Name),
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: cfg.Name,
		LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: l.started,
			OnStoppedLeading: l.stopped,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	l.le = le
	return l, nil
}

func (l *Leader) started(ctx context.Context) {
	l.cfg.Log.Info("became leader", "lease", l.cfg.Name, "identity", l.cfg.Identity)
	l.mu.Lock()
	l.leading, l.ctx = true, ctx
	close(l.elected)
	l.mu.Unlock()
}

func (l *Leader) stopped() {
	l.cfg.Log.Info("stopped leading", "lease", l.cfg.Name, "identity", l.cfg.Identity)
	l.mu.Lock()
	if l.leading {
		l.elected = make(chan struct{})
	}
	l.leading = false
	l.mu.Unlock()
}

// Elected returns a channel closed once this replica leads; after losing
// the lease a new channel is returned.
func (l *Leader) Elected() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.elected
}

// IsLeader reports whether this replica holds the lease now.
func (l *Leader) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// LeaderContext returns a context that ends when leadership ends, or nil
// when not leading.
func (l *Leader) LeaderContext() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return nil
	}
	return l.ctx
}

// Run campaigns for the lease until ctx ends, re-campaigning after a loss.
// On return the lease is released.
func (l *Leader) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		l.le.Run(ctx)
	}
	return nil
}

func metav1ObjectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
