package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// Config configures a Proxy.
type Config struct {
	// Node is this node's name: workloads labelled ward.io/node=<Node>
	// (and istio.io/dataplane-mode=ambient) are enrolled.
	Node string
	// TrustDomain of workload identities.
	TrustDomain spiffeid.TrustDomain
	// Snapshot is the initial config; SetSnapshot replaces it.
	Snapshot *mesh.Snapshot
	// Issuer signs workload certificates.
	Issuer Issuer
	// NetnsDir holds the workloads' network namespaces, one file per
	// WorkloadEntry name (default /var/run/netns, where `ip netns add`
	// puts them). Unused when Sandboxes is set.
	NetnsDir string
	// Sandboxes, when set, gives each pod's network namespace as the CNI
	// plugin reported it (Kubernetes); a workload is enrolled once both
	// its config and its namespace are known.
	Sandboxes *Sandboxes
	// CertTTL is the workload certificate lifetime asked for (default 24h).
	CertTTL time.Duration
	// OnDecision receives every inbound verdict (decision log, metrics,
	// tests); it must not block.
	OnDecision func(Decision)
	// RemoveRulesOnStop removes every workload's redirect rules when the
	// proxy stops, so traffic flows unproxied (and unauthenticated). The
	// default keeps them: a stopped proxy fails closed, and the next one
	// replaces them when it enrols the workload.
	RemoveRulesOnStop bool
	// Metrics registers the proxy's series; nil registers none.
	Metrics prometheus.Registerer
	Log     *slog.Logger
	Clock   Clock
}

// Decision is one inbound connection's verdict, for the decision log.
type Decision struct {
	ID        string    // random, as the decision log's decision_id
	Time      time.Time // on the proxy's clock
	Workload  mesh.Key  // the destination WorkloadEntry
	Transport string    // "hbone" or "plaintext"
	Conn      Conn
	Verdict   Verdict
	// Established marks an open connection closed because a policy
	// change now denies it.
	Established bool
}

// Proxy is the node proxy: it serves every enrolled workload on its node.
type Proxy struct {
	cfg     Config
	bundle  *x509bundle.Bundle
	state   atomic.Pointer[state]
	metrics *metrics

	mu   sync.Mutex
	pods map[mesh.Key]*pod
	wg   sync.WaitGroup
}

// state is what one snapshot gives the data path; swapped atomically so a
// config change never touches established connections.
type state struct {
	reg    *registry
	policy *Policy
}

// New validates cfg and compiles the initial snapshot's policies.
func New(cfg Config) (*Proxy, error) {
	if cfg.Node == "" || cfg.Snapshot == nil || cfg.Issuer == nil || cfg.TrustDomain.IsZero() {
		return nil, errors.New("node: Node, Snapshot, Issuer and TrustDomain are required")
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = "/var/run/netns"
	}
	if cfg.CertTTL == 0 {
		cfg.CertTTL = 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	pol, err := NewPolicy(cfg.Snapshot, authz.EngineConfig{Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, bundle: x509bundle.New(cfg.TrustDomain), pods: map[mesh.Key]*pod{}, metrics: m}
	p.state.Store(&state{reg: newRegistry(cfg.Snapshot), policy: pol})
	return p, nil
}

// Run enrols the node's workloads, serves them until ctx ends, then
// stops (see Stop for what happens to the redirect rules). A workload
// that fails to enrol is logged and retried on the next
// config change; the others are served.
func (p *Proxy) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		p.cfg.Log.Error("node: enrolment incomplete", "error", err)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watchSandboxes(ctx)
	}()
	p.rotate(ctx)
	<-watched
	p.Stop()
	return nil
}

// watchSandboxes reconciles when the CNI plugin reports a pod added or
// deleted, until ctx ends.
func (p *Proxy) watchSandboxes(ctx context.Context) {
	if p.cfg.Sandboxes == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.cfg.Sandboxes.changed:
			if err := p.reconcile(ctx); err != nil {
				p.cfg.Log.Error("node: enrolment incomplete", "error", err)
			}
		}
	}
}

// netnsPath is where w's network namespace is: as the CNI plugin
// reported it, or <NetnsDir>/<name>. ok is false while the plugin has
// not reported it.
func (p *Proxy) netnsPath(w *mesh.Workload) (string, bool) {
	if p.cfg.Sandboxes != nil {
		return p.cfg.Sandboxes.netns(w.Source)
	}
	return filepath.Join(p.cfg.NetnsDir, w.Name), true
}

// Start enrols the node's workloads and returns once they are served;
// Stop undoes it. A workload that fails to enrol is reported and the
// others are still served.
func (p *Proxy) Start(ctx context.Context) error { return p.reconcile(ctx) }

// Stop closes every workload's listeners and connections and waits for
// the serving goroutines. The redirect rules stay (fail closed: the
// workloads' TCP is refused until a proxy serves them again) unless
// Config.RemoveRulesOnStop is set.
func (p *Proxy) Stop() {
	p.mu.Lock()
	for k, pd := range p.pods {
		pd.stop(p.cfg.Log, p.cfg.RemoveRulesOnStop)
		delete(p.pods, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// SetSnapshot applies new config: policies and routes change for new
// connections at once; established inbound connections are judged again
// and those the new policy denies are closed (the others are untouched);
// workloads that joined the node are enrolled and those that left are
// removed.
func (p *Proxy) SetSnapshot(ctx context.Context, snap *mesh.Snapshot) error {
	pol, err := p.state.Load().policy.Update(snap)
	if err != nil {
		return err // the previous config stays in effect
	}
	p.state.Store(&state{reg: newRegistry(snap), policy: pol})
	err = p.reconcile(ctx)
	p.rejudge(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEnrolment, err)
	}
	return nil
}

// ErrEnrolment marks a SetSnapshot error where the config applied but
// some workloads did not enrol (they are retried on the next change).
var ErrEnrolment = errors.New("config applied, enrolment incomplete")

// Enrolled lists the enrolled workloads.
func (p *Proxy) Enrolled() []mesh.Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]mesh.Key, 0, len(p.pods))
	for k := range p.pods {
		out = append(out, k)
	}
	return out
}

// reconcile makes the enrolled set match the snapshot's local workloads.
func (p *Proxy) reconcile(ctx context.Context) error {
	// Under the lock: config changes and CNI events both reconcile, and
	// each must act on the state current when it runs, not when it was
	// called.
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[mesh.Key]*mesh.Workload{}
	paths := map[mesh.Key]string{}
	for _, w := range p.state.Load().reg.local(p.cfg.Node) {
		if path, ok := p.netnsPath(w); ok {
			want[w.Source], paths[w.Source] = w, path
		}
	}
	for k, pd := range p.pods {
		w, ok := want[k]
		if ok && sameEnrolment(w, pd.w) && paths[k] == pd.ns.path {
			pd.labels.Store(&w.Labels)
			continue
		}
		pd.stop(p.cfg.Log, true) // gone, or a new address, identity or sandbox: enrol afresh
		delete(p.pods, k)
		p.cfg.Log.Info("workload unenrolled", "namespace", k.Namespace, "name", k.Name, "netns", pd.ns.path)
		p.metrics.left(k)
	}
	var errs []error
	for k, w := range want {
		if _, ok := p.pods[k]; ok {
			continue
		}
		pd, err := p.enrol(ctx, w, paths[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.pods[k] = pd
	}
	return errors.Join(errs...)
}

// sameEnrolment reports whether a changed WorkloadEntry keeps what its
// enrolment was built from: address, namespace and service account.
func sameEnrolment(a, b *mesh.Workload) bool {
	return a.Address == b.Address && a.Namespace == b.Namespace && a.ServiceAccount == b.ServiceAccount
}

// enrol obtains the workload's certificate, opens its listeners inside
// its network namespace, installs the redirect rules and starts serving.
func (p *Proxy) enrol(ctx context.Context, w *mesh.Workload, netnsPath string) (*pod, error) {
	ip, err := netip.ParseAddr(w.Address)
	if err != nil {
		return nil, fmt.Errorf("enrol %s: address %q: %w", w.Source, w.Address, err)
	}
	id, err := w.Identity(p.cfg.TrustDomain.Name()).SPIFFEID()
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", w.Source, err)
	}
	s, err := issue(ctx, p.cfg.Issuer, id, p.cfg.CertTTL, p.cfg.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", w.Source, err)
	}
	p.bundle.SetX509Authorities(s.roots)
	pd := &pod{p: p, w: w, ip: ip, ns: netns{netnsPath}, done: make(chan struct{})}
	pd.svid.Store(s)
	pd.labels.Store(&w.Labels)
	p.metrics.certificate(w.Source, s)
	if err := pd.start(); err != nil {
		pd.stop(p.cfg.Log, true)
		return nil, fmt.Errorf("enrol %s: %w", w.Source, err)
	}
	p.cfg.Log.Info("workload enrolled", "namespace", w.Namespace, "name", w.Name, "spiffe_id", id.String(), "netns", pd.ns.path)
	return pd, nil
}

func (p *Proxy) decided(d Decision) {
	d.ID, d.Time = newDecisionID(), p.cfg.Clock.Now()
	lvl := slog.LevelDebug
	if !d.Verdict.Allowed {
		lvl = slog.LevelInfo
	}
	p.cfg.Log.Log(context.Background(), lvl, "inbound connection", "decision_id", d.ID, "namespace", d.Workload.Namespace, "name", d.Workload.Name,
		"transport", d.Transport, "established", d.Established, "spiffe_id", d.Conn.Principal, "source", d.Conn.Source.String(), "dest", d.Conn.Dest.String(),
		"allowed", d.Verdict.Allowed, "reason", string(d.Verdict.Reason), "explain", d.Verdict.Explain())
	p.metrics.decided(d)
	if p.cfg.OnDecision != nil {
		p.cfg.OnDecision(d)
	}
}
