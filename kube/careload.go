package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// Reloader is what CAWatch drives: ca.CA's Reload.
type Reloader interface {
	Reload(ctx context.Context) error
}

// CAWatchConfig configures a CAWatch.
type CAWatchConfig struct {
	Store SecretStore
	CA    Reloader
	Log   *slog.Logger
	// Reloaded, when set, is called after every reload attempt with its
	// error (tests wait on it).
	Reloaded func(error)
}

// CAWatch keeps a replica's CA in step with the ward-ca Secret: an
// informer on that one Secret calls Reload on every add and update, so a
// rotation, phase change or reservation written by the leader (or another
// replica) takes effect everywhere without a restart. Every replica runs
// one, the leader included (replicas' reservations change the Secret
// too); a reload of unchanged state does nothing.
type CAWatch struct {
	cfg     CAWatchConfig
	trigger chan struct{}
}

// NewCAWatch returns a watch; nothing runs until Run.
func NewCAWatch(cfg CAWatchConfig) (*CAWatch, error) {
	if cfg.Store.Client == nil || cfg.CA == nil {
		return nil, errors.New("ca watch: store client and CA are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &CAWatch{cfg: cfg, trigger: make(chan struct{}, 1)}, nil
}

// Run watches the Secret until ctx ends. Events are coalesced: a burst of
// updates causes one reload of the latest state.
func (w *CAWatch) Run(ctx context.Context) error {
	s := w.cfg.Store
	f := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(s.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name()).String()
		}))
	inf := f.Core().V1().Secrets().Informer()
	kick := func(any) {
		select {
		case w.trigger <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    kick,
		UpdateFunc: func(old, cur any) { w.onUpdate(old, cur, kick) },
	}); err != nil {
		return fmt.Errorf("ca watch: %w", err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil // ctx ended
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.trigger:
			w.reload(ctx)
		}
	}
}

// onUpdate skips resyncs of an unchanged Secret.
func (w *CAWatch) onUpdate(old, cur any, kick func(any)) {
	o, ok1 := old.(*corev1.Secret)
	c, ok2 := cur.(*corev1.Secret)
	if ok1 && ok2 && o.ResourceVersion == c.ResourceVersion {
		return
	}
	kick(cur)
}

// reload calls Reload, retrying a failure a few times with a short
// backoff (the API server may be briefly unavailable).
func (w *CAWatch) reload(ctx context.Context) {
	var err error
	for attempt, wait := 0, 100*time.Millisecond; attempt < 5; attempt, wait = attempt+1, wait*2 {
		if err = w.cfg.CA.Reload(ctx); err == nil || ctx.Err() != nil {
			break
		}
		w.cfg.Log.Warn("ca state reload failed", "err", err, "attempt", attempt+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if w.cfg.Reloaded != nil {
		w.cfg.Reloaded(err)
	}
}
