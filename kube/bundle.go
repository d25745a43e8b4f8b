package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Trust bundle ConfigMap, as Istio names it.
const (
	TrustBundleConfigMap = "ward-ca-root-cert"
	TrustBundleKey       = "root-cert.pem"
)

// BundleConfig configures a BundleSync.
type BundleConfig struct {
	Client kubernetes.Interface
	Log    *slog.Logger
	// Bundle returns the current trust bundle PEM (ca.CA.BundlePEM);
	// Changed returns a channel closed at the next change (ca.CA.Changed).
	Bundle  func() []byte
	Changed func() <-chan struct{}
	// Leader, when set, restricts writes to the leader; nil writes always.
	Leader *Leader
}

// BundleSync keeps the trust-bundle ConfigMap in every namespace equal to
// the CA's bundle: on start, on every new namespace, on every bundle change
// (root rotation) and on an edit or deletion of one of the ConfigMaps.
type BundleSync struct {
	cfg  BundleConfig
	wake chan struct{}
}

// NewBundleSync checks cfg.
func NewBundleSync(cfg BundleConfig) (*BundleSync, error) {
	if cfg.Client == nil || cfg.Bundle == nil || cfg.Changed == nil {
		return nil, fmt.Errorf("trust bundle sync: Client, Bundle and Changed are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &BundleSync{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

func (b *BundleSync) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends.
func (b *BundleSync) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(b.cfg.Client, 0)
	cmf := informers.NewSharedInformerFactoryWithOptions(b.cfg.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + TrustBundleConfigMap
	}))
	nss := f.Core().V1().Namespaces()
	cms := cmf.Core().V1().ConfigMaps()
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { b.poke() }, UpdateFunc: func(any, any) { b.poke() }, DeleteFunc: func(any) { b.poke() }}
	if _, err := nss.Informer().AddEventHandler(h); err != nil {
		return err
	}
	if _, err := cms.Informer().AddEventHandler(h); err != nil {
		return err
	}
	f.Start(ctx.Done())
	cmf.Start(ctx.Done())
	defer f.Shutdown()
	defer cmf.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nss.Informer().HasSynced, cms.Informer().HasSynced) {
		return nil
	}
	for {
		changed := b.cfg.Changed()
		var elected <-chan struct{}
		if b.cfg.Leader != nil && !b.cfg.Leader.IsLeader() {
			elected = b.cfg.Leader.Elected()
		} else {
			b.sync(ctx, nss.Lister(), cms.Lister())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-changed:
		case <-elected:
		}
	}
}

func (b *BundleSync) sync(ctx context.Context, nsl corelisters.NamespaceLister, cms corelisters.ConfigMapLister) {
	pem := string(b.cfg.Bundle())
	list, _ := nsl.List(labels.Everything())
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for _, ns := range list {
		if ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		cur, err := cms.ConfigMaps(ns.Name).Get(TrustBundleConfigMap)
		if err == nil && cur.Data[TrustBundleKey] == pem {
			continue
		}
		if err := b.write(ctx, ns.Name, pem); err != nil {
			b.cfg.Log.Warn("write trust bundle", "namespace", ns.Name, "err", err)
		}
	}
}

func (b *BundleSync) write(ctx context.Context, ns, pem string) error {
	c := b.cfg.Client.CoreV1().ConfigMaps(ns)
	cur, err := c.Get(ctx, TrustBundleConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: TrustBundleConfigMap, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "ward"}},
			Data:       map[string]string{TrustBundleKey: pem},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Data = map[string]string{TrustBundleKey: pem}
	_, err = c.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}
