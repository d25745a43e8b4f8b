package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/wardmesh/ward/mesh"
	meshschema "github.com/wardmesh/ward/mesh/schema"
)

// Defaults for Config.
const (
	DefaultNamespace     = "ward-system"
	DefaultMeshConfigMap = "ward-mesh"
	MeshConfigKey        = "mesh"
	DefaultClusterDomain = "cluster.local"
)

// Problem is something wrong with one object that the source reports on
// the object's status (in addition to decode and validation errors).
type Problem struct {
	Key     mesh.Key
	Reason  string // CamelCase, e.g. "Conflict", "UnsupportedOnTCP"
	Message string
}

// Config configures a Source.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Log     *slog.Logger
	// Namespace is Ward's own namespace, holding the MeshConfig ConfigMap
	// (MeshConfigMap, key "mesh": the MeshConfig spec as YAML).
	Namespace     string
	MeshConfigMap string
	ClusterDomain string
	// OnSnapshot is called, from the Run goroutine, with every snapshot
	// whose version differs from the previous one.
	OnSnapshot func(*mesh.Snapshot)
	// Analyze, when set, finds further problems in each snapshot (e.g.
	// authz.Analyze); they are written to status with the others.
	Analyze func(*mesh.Snapshot) []Problem
	// WriteStatus enables status condition updates on Istio objects.
	WriteStatus bool
	// Resync, when positive, rebuilds (and re-analyzes) this often even
	// without a change, for findings that depend on outside state such as
	// JWKS fetches; an unchanged snapshot is not published again.
	Resync time.Duration
}

// Source is the Kubernetes config source.
type Source struct {
	cfg    Config
	kinds  []kindInformer
	core   informers.SharedInformerFactory
	wardNS informers.SharedInformerFactory
	dyn    dynamicinformer.DynamicSharedInformerFactory
	svcs   cache.SharedIndexInformer
	slices cache.SharedIndexInformer
	pods   cache.SharedIndexInformer
	nss    cache.SharedIndexInformer // namespaces: their ambient enrolment label
	cms    cache.SharedIndexInformer
	wake   chan struct{}

	mu   sync.Mutex // guards snap; the rest is owned by the Run goroutine
	snap *mesh.Snapshot

	decoded  map[mesh.Key]decodeResult
	lastMesh mesh.MeshConfig
}

type kindInformer struct {
	kind     mesh.Kind
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
}

type decodeResult struct {
	rv   string
	cfg  *mesh.Config // last good version
	err  error        // error of the current version, nil when good
	item *unstructured.Unstructured
}

// NewSource registers the informers; nothing is watched until Run.
func NewSource(cfg Config) (*Source, error) {
	if cfg.Client == nil || cfg.Dynamic == nil {
		return nil, errors.New("kube source: Client and Dynamic are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.MeshConfigMap == "" {
		cfg.MeshConfigMap = DefaultMeshConfigMap
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = DefaultClusterDomain
	}
	s := &Source{cfg: cfg, wake: make(chan struct{}, 1), decoded: map[mesh.Key]decodeResult{}}
	s.core = informers.NewSharedInformerFactory(cfg.Client, 0)
	s.wardNS = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace))
	s.dyn = dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, 0)
	s.svcs = s.core.Core().V1().Services().Informer()
	s.slices = s.core.Discovery().V1().EndpointSlices().Informer()
	s.pods = s.core.Core().V1().Pods().Informer()
	if err := s.pods.AddIndexers(cache.Indexers{indexNode: podNode}); err != nil {
		return nil, fmt.Errorf("kube source: pod index: %w", err)
	}
	s.nss = s.core.Core().V1().Namespaces().Informer()
	s.cms = s.wardNS.Core().V1().ConfigMaps().Informer()
	all := []cache.SharedIndexInformer{s.svcs, s.slices, s.pods, s.nss, s.cms}
	for _, k := range mesh.Kinds() {
		info, _ := k.Info()
		gvr := schema.GroupVersionResource{Group: info.Group, Version: "v1", Resource: info.Plural}
		inf := s.dyn.ForResource(gvr).Informer()
		s.kinds = append(s.kinds, kindInformer{kind: k, gvr: gvr, informer: inf})
		all = append(all, inf)
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	for _, inf := range all {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("kube source: add handler: %w", err)
		}
	}
	return s, nil
}

func (s *Source) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// GVR returns the resource Ward watches for an Istio kind.
func GVR(k mesh.Kind) schema.GroupVersionResource {
	info, _ := k.Info()
	return schema.GroupVersionResource{Group: info.Group, Version: "v1", Resource: info.Plural}
}

// Snapshot returns the current snapshot, nil before the caches synced.
func (s *Source) Snapshot() *mesh.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Run starts the informers, waits for their caches, then rebuilds the
// snapshot after every change (changes arriving during a rebuild are
// coalesced into one more). It returns when ctx ends.
func (s *Source) Run(ctx context.Context) error {
	s.core.Start(ctx.Done())
	s.wardNS.Start(ctx.Done())
	s.dyn.Start(ctx.Done())
	defer s.core.Shutdown()
	defer s.wardNS.Shutdown()
	defer s.dyn.Shutdown()
	synced := []cache.InformerSynced{s.svcs.HasSynced, s.slices.HasSynced, s.pods.HasSynced, s.nss.HasSynced, s.cms.HasSynced}
	for _, k := range s.kinds {
		synced = append(synced, k.informer.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kube source: informer caches did not sync (are Ward's CRDs installed?)")
	}
	s.cfg.Log.Info("kubernetes caches synced")
	s.poke()
	var tick <-chan time.Time
	if s.cfg.Resync > 0 {
		t := time.NewTicker(s.cfg.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick:
		}
		s.rebuild(ctx)
	}
}

// Refresh asks for a rebuild soon (e.g. when outside state that Analyze
// reads has changed).
func (s *Source) Refresh() { s.poke() }

func (s *Source) rebuild(ctx context.Context) {
	mc := s.meshConfig()
	configs, problems := s.istioConfigs()
	configs = append(configs, s.registry()...)
	snap := mesh.NewSnapshot(mc, configs)
	problems = append(problems, namespaceWideConflicts(snap)...)
	if s.cfg.Analyze != nil {
		problems = append(problems, s.cfg.Analyze(snap)...)
	}
	s.mu.Lock()
	changed := s.snap == nil || s.snap.Version() != snap.Version()
	if changed {
		s.snap = snap
	}
	s.mu.Unlock()
	if changed && s.cfg.OnSnapshot != nil {
		s.cfg.OnSnapshot(snap)
	}
	if s.cfg.WriteStatus {
		s.writeStatus(ctx, problems)
	}
}

// istioConfigs decodes every Istio object (reusing the previous result for
// an unchanged resourceVersion). An invalid object never displaces the
// last good version of itself; it is reported as a Problem.
func (s *Source) istioConfigs() ([]*mesh.Config, []Problem) {
	var out []*mesh.Config
	var problems []Problem
	seen := map[mesh.Key]bool{}
	for _, k := range s.kinds {
		for _, o := range k.informer.GetStore().List() {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			key := mesh.Key{Kind: k.kind, Namespace: u.GetNamespace(), Name: u.GetName()}
			seen[key] = true
			r := s.decode(key, u)
			if r.err != nil {
				problems = append(problems, Problem{Key: key, Reason: "Invalid", Message: r.err.Error()})
			}
			if r.cfg != nil {
				out = append(out, r.cfg)
			}
		}
	}
	for key := range s.decoded {
		if !seen[key] {
			delete(s.decoded, key)
		}
	}
	return out, problems
}

func (s *Source) decode(key mesh.Key, u *unstructured.Unstructured) decodeResult {
	prev, ok := s.decoded[key]
	if ok && prev.rv == u.GetResourceVersion() {
		prev.item = u
		return prev
	}
	c, err := decodeUnstructured(u)
	r := decodeResult{rv: u.GetResourceVersion(), cfg: c, err: err, item: u}
	if err != nil {
		r.cfg = prev.cfg
		s.logRejected(key, r.cfg != nil, err)
	}
	s.decoded[key] = r
	return r
}

// logRejected logs one line per violation, so an object with many errors
// stays readable in the log.
func (s *Source) logRejected(key mesh.Key, kept bool, err error) {
	const msg = "rejected object, keeping its last good version"
	attrs := []any{"kind", key.Kind, "namespace", key.Namespace, "name", key.Name, "kept", kept}
	var oe *meshschema.ObjectError
	if !errors.As(err, &oe) || len(oe.Errors) == 0 {
		s.cfg.Log.Warn(msg, append(attrs, "err", err)...)
		return
	}
	for _, fe := range oe.Errors {
		s.cfg.Log.Warn(msg, append(attrs, "field", fe.Path, "err", fe.Message)...)
	}
}

// registry derives ServiceEntries from Services and WorkloadEntries from
// Pods.
func (s *Source) registry() []*mesh.Config {
	var services []*corev1.Service
	for _, o := range s.svcs.GetStore().List() {
		services = append(services, o.(*corev1.Service))
	}
	sort.Slice(services, func(i, j int) bool {
		return services[i].Namespace+"/"+services[i].Name < services[j].Namespace+"/"+services[j].Name
	})
	byNS := map[string][]*corev1.Service{}
	var out []*mesh.Config
	for _, svc := range services {
		byNS[svc.Namespace] = append(byNS[svc.Namespace], svc)
		out = append(out, serviceEntry(svc, s.endpointSlices(svc), s.cfg.ClusterDomain))
	}
	modes := map[string]string{}
	for _, o := range s.nss.GetStore().List() {
		ns := o.(*corev1.Namespace)
		if m, ok := ns.Labels[LabelDataplaneMode]; ok {
			modes[ns.Name] = m
		}
	}
	for _, o := range s.pods.GetStore().List() {
		pod := o.(*corev1.Pod)
		if c := workloadEntry(pod, namedTargetPorts(pod, byNS[pod.Namespace]), modes[pod.Namespace]); c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (s *Source) endpointSlices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	if len(svc.Spec.Selector) > 0 {
		return nil
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	var out []*discoveryv1.EndpointSlice
	for _, o := range s.slices.GetStore().List() {
		es := o.(*discoveryv1.EndpointSlice)
		if es.Namespace == svc.Namespace && sel.Matches(labels.Set(es.Labels)) {
			out = append(out, es)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// namespaceWideConflicts reports every namespace-wide (selector-less)
// PeerAuthentication but the oldest in its namespace: Istio uses the
// oldest and ignores the rest.
func namespaceWideConflicts(snap *mesh.Snapshot) []Problem {
	var out []Problem
	for _, ns := range snap.Namespaces() {
		var wide []*mesh.Config
		for _, c := range snap.InNamespace(mesh.KindPeerAuthentication, ns) {
			if _, has := mesh.SelectorOf(c.Spec); !has {
				wide = append(wide, c)
			}
		}
		sort.Slice(wide, func(i, j int) bool { return mesh.Older(wide[i], wide[j]) })
		for _, c := range wide[min(1, len(wide)):] {
			out = append(out, Problem{Key: c.Key(), Reason: "Conflict",
				Message: fmt.Sprintf("ignored: namespace %s already has a namespace-wide PeerAuthentication %s, which is older", ns, wide[0].Name)})
		}
	}
	return out
}
