package webhook

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Names of Ward's webhook configurations (deploy/webhooks.yaml).
const (
	MutatingConfigName   = "ward-sidecar-injector"
	ValidatingConfigName = "ward-validator"
)

// CABundleConfig configures a CABundleSync.
type CABundleConfig struct {
	Client kubernetes.Interface
	Log    *slog.Logger
	// Bundle and Changed are ca.CA's BundlePEM and Changed.
	Bundle  func() []byte
	Changed func() <-chan struct{}
	// Mutating and Validating name the configurations to keep (defaults
	// MutatingConfigName, ValidatingConfigName).
	Mutating, Validating string
}

// CABundleSync keeps the caBundle of every webhook in Ward's webhook
// configurations equal to the CA's trust bundle, so the API server trusts
// the webhook's serving certificate across root rotations and after a
// `kubectl apply` resets the field.
type CABundleSync struct {
	cfg  CABundleConfig
	wake chan struct{}
}

// NewCABundleSync checks cfg.
func NewCABundleSync(cfg CABundleConfig) (*CABundleSync, error) {
	if cfg.Client == nil || cfg.Bundle == nil || cfg.Changed == nil {
		return nil, fmt.Errorf("webhook ca bundle sync: Client, Bundle and Changed are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mutating == "" {
		cfg.Mutating = MutatingConfigName
	}
	if cfg.Validating == "" {
		cfg.Validating = ValidatingConfigName
	}
	return &CABundleSync{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Run syncs until ctx ends.
func (c *CABundleSync) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(c.cfg.Client, 0)
	mw := f.Admissionregistration().V1().MutatingWebhookConfigurations()
	vw := f.Admissionregistration().V1().ValidatingWebhookConfigurations()
	poke := func() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }}
	for _, inf := range []cache.SharedIndexInformer{mw.Informer(), vw.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), mw.Informer().HasSynced, vw.Informer().HasSynced) {
		return nil
	}
	for {
		changed := c.cfg.Changed()
		if err := c.sync(ctx); err != nil {
			c.cfg.Log.Warn("webhook ca bundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-changed:
		}
	}
}

func (c *CABundleSync) sync(ctx context.Context) error {
	pem := c.cfg.Bundle()
	api := c.cfg.Client.AdmissionregistrationV1()
	if m, err := api.MutatingWebhookConfigurations().Get(ctx, c.cfg.Mutating, metav1.GetOptions{}); err == nil {
		dirty := false
		for i := range m.Webhooks {
			if !bytes.Equal(m.Webhooks[i].ClientConfig.CABundle, pem) {
				m.Webhooks[i].ClientConfig.CABundle, dirty = pem, true
			}
		}
		if dirty {
			if _, err := api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update mutating webhook configuration %s: %w", m.Name, err)
			}
		}
	}
	if v, err := api.ValidatingWebhookConfigurations().Get(ctx, c.cfg.Validating, metav1.GetOptions{}); err == nil {
		dirty := false
		for i := range v.Webhooks {
			if !bytes.Equal(v.Webhooks[i].ClientConfig.CABundle, pem) {
				v.Webhooks[i].ClientConfig.CABundle, dirty = pem, true
			}
		}
		if dirty {
			if _, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update validating webhook configuration %s: %w", v.Name, err)
			}
		}
	}
	return nil
}
