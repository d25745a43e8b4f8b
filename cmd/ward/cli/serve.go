package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	securityv1beta1 "istio.io/api/security/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/internal/access"
	"github.com/wardmesh/ward/internal/httpserve"
	"github.com/wardmesh/ward/internal/rotate"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/telemetry/als"
	"github.com/wardmesh/ward/webhook"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/ambient"
	"github.com/wardmesh/ward/xds/hooks"
)

type serveOptions struct {
	configDir   string
	stateDir    string
	debugAddr   string
	xdsAddr     string
	secureAddr  string
	authzAddr   string
	authzReach  string
	authzTLS    string
	serverNames []string
	quiet       time.Duration
	maxWait     time.Duration
	// xdsAddrSet: --xds-addr was given (Kubernetes mode serves no
	// plaintext ADS unless it was).
	xdsAddrSet           bool
	debugTLSAddr         string
	operators            []string
	limits               xds.Limits
	connLimits           xds.ConnLimits
	maxConcurrentStreams uint32
	log                  logOptions
	kube                 kubeOptions
	bounds               limitOptions
}

// kubeOptions are the flags of Kubernetes mode (--kube).
type kubeOptions struct {
	enabled     bool
	kubeconfig  string
	namespace   string
	service     string
	identity    string
	webhookAddr string
	pluginDir   string
	inject      webhook.InjectConfig
}

func (k *kubeOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&k.enabled, "kube", false, "read config from Kubernetes (Istio CRDs, Services, Pods), keep CA state in a Secret, serve the admission webhooks; --config may run beside it or be empty")
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
	f.StringVar(&k.namespace, "kube-namespace", defaultNamespace(), "Ward's namespace (default $POD_NAMESPACE, else ward-system): CA Secret, Lease, MeshConfig ConfigMap, the control plane's identity spiffe://<td>/ns/<namespace>/sa/ward, and the namespace of its Service")
	f.StringVar(&k.service, "kube-service", webhook.DefaultService, "Ward's Service in --kube-namespace: the serving certificate names <service>.<namespace>.svc (and .svc.cluster.local), and the injector's default addresses")
	f.StringVar(&k.identity, "kube-identity", hostname(), "this replica's leader-election identity (the pod name)")
	f.StringVar(&k.webhookAddr, "webhook-addr", ":15017", "address of the admission webhooks (/inject, /validate)")
	f.StringVar(&k.pluginDir, "ca-plugin-dir", "", "Istio cacerts directory; used (plug-in CA) when it holds ca-cert.pem")
	f.StringVar(&k.inject.ProxyImage, "proxy-image", "", "Envoy image injected into pods")
	f.StringVar(&k.inject.WardImage, "ward-image", "", "Ward image injected into pods (agent, init)")
	f.BoolVar(&k.inject.CNI, "cni", false, "a CNI plugin redirects traffic: inject no redirect (ward-init) init container")
	f.StringVar(&k.inject.CAAddr, "injector-ca-addr", "", "certificate service address injected agents use (default <kube-service>.<kube-namespace>.svc:15012)")
	f.StringVar(&k.inject.XDSAddr, "injector-xds-addr", "", "xDS address injected proxies use (default --injector-ca-addr)")
}

// defaultNamespace is the namespace Ward runs in: $POD_NAMESPACE (the
// chart sets it from the downward API), else ward-system.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return kube.DefaultNamespace
}

// serverIdentity is the control plane's identity in Kubernetes mode: the
// ServiceAccount ward in the namespace it runs in.
func (k kubeOptions) serverIdentity() mesh.Identity {
	return mesh.Identity{Namespace: k.namespace, ServiceAccount: mesh.ControlPlaneServiceAccount}
}

// serverNames adds the Service's DNS names to names, which the serving
// certificate must cover for in-cluster agents and the API server (the
// webhooks) to verify it.
func (k kubeOptions) serverNames(names []string) []string {
	out := append([]string(nil), names...)
	for _, n := range []string{k.service + "." + k.namespace + ".svc", k.service + "." + k.namespace + ".svc.cluster.local"} {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func newServeCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Ward control plane",
		Long: "Run the Ward control plane on a config directory of Istio YAML: it validates and\n" +
			"watches the directory and serves health, metrics and debug endpoints.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.xdsAddrSet = cmd.Flags().Changed("xds-addr")
			return runServe(cmd.Context(), o, o.log.logger(cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config", "examples", "directory of Istio YAML to serve (watched for changes)")
	f.StringVar(&o.stateDir, "state", ".state", "directory for control-plane state (CA keys); created with mode 0700")
	f.StringVar(&o.debugAddr, "debug-addr", "127.0.0.1:15014", "address of the health, metrics and debug HTTP server (loopback by default; /debug/ pages need a loopback caller or a credential elsewhere)")
	f.StringVar(&o.debugTLSAddr, "debug-tls-addr", "", "address of the same debug server over TLS, where callers authenticate with their Ward client certificate; empty disables it")
	f.StringSliceVar(&o.operators, "debug-operator", nil, "identities (<namespace>/<service-account>) that see every namespace on the debug pages; other authenticated callers see only their own namespace (loopback callers see everything)")
	f.StringVar(&o.xdsAddr, "xds-addr", "127.0.0.1:15010", "address of the plaintext, unauthenticated ADS server (local development; loopback by default, off in --kube mode unless given); empty disables it")
	f.IntVar(&o.connLimits.MaxConnections, "max-connections", xds.DefaultMaxConnections, "open connections each gRPC port (xDS, secure) accepts; -1: no limit")
	f.IntVar(&o.connLimits.MaxConnectionsPerSource, "max-connections-per-source", xds.DefaultMaxConnectionsPerSource, "open connections each gRPC port accepts from one source IP; -1: no limit")
	f.Uint32Var(&o.maxConcurrentStreams, "max-concurrent-streams", xds.DefaultMaxConcurrentStreams, "concurrent gRPC streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)")
	f.IntVar(&o.limits.MaxStreams, "max-xds-streams", xds.DefaultMaxStreams, "open xDS streams in all; -1: no limit")
	f.IntVar(&o.limits.MaxStreamsPerSource, "max-xds-streams-per-source", xds.DefaultMaxStreamsPerSource, "open xDS streams from one source IP; -1: no limit")
	f.StringVar(&o.secureAddr, "secure-addr", ":15012", "address of the TLS server: certificate signing (IstioCertificateService) and ADS over mTLS")
	f.StringVar(&o.authzAddr, "authz-addr", "127.0.0.1:9191", "address of the plaintext ext_authz (envoy.service.auth.v3) server, which trusts the workload each check names, so it listens on loopback by default; empty disables it. ext_authz is always served over mTLS on --secure-addr, bound to the caller's certificate. Decisions are logged to <state>/decisions.log")
	f.StringVar(&o.authzReach, "ext-authz-target", "", "IP:port at which Envoy proxies reach this ext_authz server; when set they enforce AuthorizationPolicy through it (OPA, failing closed) instead of native RBAC")
	f.StringVar(&o.authzTLS, "ext-authz-target-tls", extAuthzTLSAuto, "how Envoy proxies reach --ext-authz-target: mtls (their workload certificate; the server must be the control plane's SPIFFE ID), plaintext, or auto (mtls when the target's port is --secure-addr's)")
	f.StringSliceVar(&o.serverNames, "server-name", []string{"localhost", "127.0.0.1"}, "DNS names or IPs agents use to reach the control plane (in its serving certificate)")
	f.DurationVar(&o.quiet, "debounce", 100*time.Millisecond, "quiet period before config changes are applied")
	f.DurationVar(&o.maxWait, "debounce-max", time.Second, "longest a stream of changes can delay an update")
	o.log.addFlags(cmd)
	o.kube.addFlags(cmd)
	o.bounds.addFlags(cmd)
	return cmd
}

// authzPreviousPolicyBound bounds how long the ext_authz server keeps
// deciding by the previous snapshot while it prepares a new one: Istio's
// sidecars likewise enforce the old RBAC until they ACK the new listener.
const authzPreviousPolicyBound = 10 * time.Second

// controlPlane holds the running parts of `ward serve`.
type controlPlane struct {
	log      *slog.Logger
	registry *prometheus.Registry
	source   *file.Source
	xds      *xds.Server
	nodes    *ambient.Server // node proxies' config over delta ADS
	ca       *ca.CA
	jwks     *jwks.Resolver
	authz    *extauthz.Server
	calls    *als.Store // call records from Envoy's access log service
	metrics  *als.Metrics
	ready    atomic.Bool
	kube     *kubeMode // nil outside Kubernetes mode

	mu       sync.Mutex
	fileSnap *mesh.Snapshot
	kubeSnap *mesh.Snapshot
	current  *mesh.Snapshot // what was last served
}

func runServe(ctx context.Context, o serveOptions, log *slog.Logger) error {
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if o.configDir == "" && !o.kube.enabled {
		return errors.New("serve: --config is required outside Kubernetes mode")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := &controlPlane{log: log, registry: prometheus.NewRegistry()}
	cp.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cp.jwks = jwks.New(jwks.Config{Log: log, Registry: cp.registry, OnChange: cp.onKeysChanged})
	decisions, err := decisionlog.New(decisionlog.Config{Path: filepath.Join(o.stateDir, "decisions.log"), Queue: 4096})
	if err != nil {
		return err
	}
	defer decisions.Close()
	// A policy change is prepared for every known workload before it
	// decides (the previous policies keep deciding meanwhile, at most
	// authzPreviousPolicyBound): preparing on a check could exceed Envoy's
	// 200 ms ext_authz timeout and deny it (docs/authz.md).
	cp.authz = extauthz.New(extauthz.Config{Log: log, Decisions: decisions, Registry: cp.registry, Keys: cp.jwks,
		PreviousPolicyBound: authzPreviousPolicyBound})
	defer cp.authz.Close() // stops background preparation
	hc := hooks.Config{Keys: cp.jwks, Log: log}
	if hc.ExtAuthz, err = extAuthzTarget(o); err != nil {
		return err
	}
	if t := hc.ExtAuthz; t != nil {
		log.Info("envoy proxies enforce authorization through ext_authz", "target", o.authzReach, "mtls", t.TLS)
	}
	// Node proxies authenticate by their node certificate on the secure
	// port (the CA is built below; the closure reads it per stream).
	cp.nodes = ambient.New(ambient.Config{Log: log, Metrics: cp.registry,
		Auth: func(ctx context.Context) (string, error) { return cp.ca.PeerNode(ctx) }})
	cp.xds = xds.NewServer(xds.Config{Log: log, Registry: cp.registry, Debounce: o.quiet, MaxDebounce: o.maxWait,
		Limits: o.limits, Hooks: hooks.New(hc), Nodes: cp.nodes})
	defer cp.xds.Close()
	// Kubernetes mode first: until its caches sync, no snapshot (not even
	// the file source's) is served or counts as ready.
	if o.kube.enabled {
		if cp.kube, err = newKubeMode(ctx, o.kube, log, cp.onKubeSnapshot, cp.analyze); err != nil {
			return err
		}
	}
	var meshCfg mesh.MeshConfig
	if o.configDir != "" {
		src, err := file.New(file.Config{
			Dir: o.configDir, Log: log, Quiet: o.quiet, MaxWait: o.maxWait,
			Registry: cp.registry, OnSnapshot: cp.onFileSnapshot, Limits: o.bounds.config,
		})
		if err != nil {
			return err
		}
		cp.source = src
		// The first load happens before anything listens: the CA needs the
		// mesh's trust domain and TTLs, and readiness needs a snapshot.
		first, err := src.Reload()
		if err != nil {
			return err
		}
		meshCfg = first.Mesh()
	}
	if o.kube.enabled {
		meshCfg = cp.kube.mesh.WithDefaults()
		cp.ca, err = cp.kube.newCA(ctx, o, meshCfg, cp.registry)
	} else {
		cp.ca, err = newCA(o, meshCfg, log, cp.registry, ca.SnapshotPlacement{Snapshot: cp.snapshot})
	}
	if err != nil {
		return err
	}
	defer cp.ca.Close() // flushes the issuance log
	addrs := []string{o.debugAddr, plainXDSAddr(o), o.secureAddr, o.authzAddr, o.kube.webhookAddr, o.debugTLSAddr}
	if !o.kube.enabled {
		addrs[4] = ""
	}
	listeners, err := listenAll(addrs...)
	if err != nil {
		return err
	}
	for _, i := range []int{1, 2} {
		if listeners[i] != nil {
			listeners[i] = cp.xds.LimitListener(listeners[i], o.connLimits)
		}
	}
	log.Info("ward serving", "config", o.configDir, "kube", o.kube.enabled, "state", o.stateDir, "trust_domain", meshCfg.WithDefaults().TrustDomain,
		"debug_addr", listeners[0].Addr().String(), "xds_addr", addrOf(listeners[1]),
		"secure_addr", listeners[2].Addr().String(), "authz_addr", addrOf(listeners[3]), "debug_tls_addr", addrOf(listeners[5]))
	logExposure(log, listeners[0], listeners[1])
	streams := grpc.MaxConcurrentStreams(o.maxConcurrentStreams)
	// The xDS codec sends config shared by proxies as shared bytes (encode
	// once); other services on these servers keep gRPC's proto codec.
	plain := grpc.NewServer(append(cp.xds.ServerOptions(), streams)...)
	cp.xds.Register(plain)
	secure := grpc.NewServer(append(cp.xds.ServerOptions(), grpc.Creds(credentials.NewTLS(cp.ca.ServerTLSConfig())), streams)...)
	cp.ca.Register(secure)
	// ADS on the secure port needs a verified workload certificate and
	// serves only its identity; the certificate service beside it still
	// takes callers without one (token-authenticated).
	cp.xds.RegisterSecure(secure, xds.AuthenticatorFunc(cp.ca.PeerIdentity))
	// ext_authz over mTLS shares the secure port: it needs exactly its
	// TLS (the CA's serving certificate, client certificates verified
	// against the current roots), and Envoy and proxyless workloads already
	// reach and pin it.
	cp.authz.RegisterMTLS(secure, extauthz.PeerConfig{TrustDomain: cp.ca.TrustDomain(), Roots: cp.ca.Roots})
	// Envoy's gRPC Access Log Service, bound to the caller's certificate
	// like ADS: a proxy reports only for its own namespace.
	callLog, err := rotate.Open(filepath.Join(o.stateDir, "calls.log"), 64<<20, 3)
	if err != nil {
		return err
	}
	defer callLog.Close()
	istioMetrics, err := als.NewMetrics(cp.registry, 0)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.metrics = istioMetrics
	current := cp.current
	cp.mu.Unlock()
	if current != nil {
		setMetricWorkloads(istioMetrics, current)
	}
	cp.calls = als.NewStore(als.StoreConfig{Sink: callLog, Metrics: istioMetrics})
	als.New(als.Config{Auth: xds.AuthenticatorFunc(cp.ca.PeerIdentity), Store: cp.calls, Log: log}).Register(secure)
	g, ctx := errgroup.WithContext(ctx)
	if cp.source != nil {
		g.Go(func() error { return cp.source.Run(ctx) })
	}
	if cp.kube != nil {
		if err := cp.kube.start(ctx, g, cp.ca, listeners[4], o.kube.inject, meshCfg); err != nil {
			return err
		}
	} else {
		g.Go(func() error { return cp.ca.Run(ctx) })
	}
	g.Go(func() error { return cp.jwks.Run(ctx) })
	if listeners[3] != nil {
		if ip := listeners[3].Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			log.Warn("the plaintext ext_authz listener trusts the workload each check names and is not loopback-only; bind it to 127.0.0.1 or disable it (--authz-addr \"\") and use the secure port", "authz_addr", listeners[3].Addr().String())
		}
		g.Go(func() error { return cp.authz.Serve(ctx, listeners[3]) })
	}
	gate, err := cp.debugGate(o)
	if err != nil {
		return err
	}
	mux := cp.debugMux(gate)
	g.Go(func() error { return httpserve.Serve(ctx, listeners[0], mux) })
	if listeners[5] != nil {
		tlsLis := tls.NewListener(listeners[5], httpsConfig(cp.ca.ServerTLSConfig()))
		g.Go(func() error { return httpserve.Serve(ctx, tlsLis, mux) })
	}
	if listeners[1] != nil {
		g.Go(func() error { return serveGRPC(ctx, listeners[1], plain) })
	}
	g.Go(func() error { return serveGRPC(ctx, listeners[2], secure) })
	err = g.Wait()
	if cp.kube != nil {
		cp.kube.awaitLeaseRelease(leaseReleaseTimeout)
	}
	log.Info("ward stopped")
	return err
}

// leaseReleaseTimeout bounds how long a stopping replica waits to hand
// its Lease back.
const leaseReleaseTimeout = 5 * time.Second

// awaitLeaseRelease waits, bounded, until the leader campaign has
// released the Lease, so that another replica takes it at its next retry
// (2 s) instead of after the lease duration (15 s), in which no replica
// leads: a rolling update hands leadership over without that gap.
func (k *kubeMode) awaitLeaseRelease(timeout time.Duration) {
	if k.leaderDone == nil {
		return
	}
	select {
	case <-k.leaderDone:
	case <-time.After(timeout):
		k.log.Warn("lease not released before exit; another replica takes it when it expires", "lease", kube.DefaultLease, "timeout", timeout)
	}
}

// newCA builds the file-mode CA. Node proxies are issued the certificates
// of the workloads the WorkloadEntries place on their node (placement).
func newCA(o serveOptions, m mesh.MeshConfig, log *slog.Logger, reg prometheus.Registerer, placement ca.Placement) (*ca.CA, error) {
	cfg := ca.Config{
		StateDir: o.stateDir, TrustDomain: m.TrustDomain, Log: log, Metrics: reg,
		DefaultTTL: time.Duration(m.DefaultCertTTL), MaxTTL: time.Duration(m.MaxCertTTL),
		ServerNames: o.serverNames, Placement: placement,
	}
	o.bounds.applyCA(&cfg)
	return ca.New(cfg)
}

// listenAll opens every address or none; an empty address (a disabled
// server) gets a nil listener.
func listenAll(addrs ...string) ([]net.Listener, error) {
	var out []net.Listener
	for _, a := range addrs {
		if a == "" {
			out = append(out, nil)
			continue
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range out {
				if o != nil {
					o.Close()
				}
			}
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "disabled"
	}
	return l.Addr().String()
}

// --ext-authz-target-tls values.
const (
	extAuthzTLSAuto      = "auto"
	extAuthzTLSMTLS      = "mtls"
	extAuthzTLSPlaintext = "plaintext"
)

// extAuthzTarget is where Envoy proxies reach ext_authz (nil: nowhere,
// they enforce native RBAC), and whether over mTLS.
func extAuthzTarget(o serveOptions) (*hooks.ExtAuthzTarget, error) {
	if o.authzReach == "" {
		return nil, nil
	}
	t, err := hooks.ParseExtAuthzTarget(o.authzReach)
	if err != nil {
		return nil, err
	}
	switch o.authzTLS {
	case extAuthzTLSMTLS:
		t.TLS = true
	case extAuthzTLSPlaintext:
	case extAuthzTLSAuto:
		_, port, err := net.SplitHostPort(o.secureAddr)
		t.TLS = err == nil && port == strconv.FormatUint(uint64(t.Port), 10)
	default:
		return nil, fmt.Errorf("serve: --ext-authz-target-tls %q: want %s, %s or %s", o.authzTLS, extAuthzTLSAuto, extAuthzTLSMTLS, extAuthzTLSPlaintext)
	}
	if o.kube.enabled {
		t.ServerNamespace = o.kube.namespace
	}
	return t, nil
}

func (cp *controlPlane) onFileSnapshot(s *mesh.Snapshot) {
	cp.mu.Lock()
	cp.fileSnap = s
	cp.mu.Unlock()
	cp.push()
}

func (cp *controlPlane) onKubeSnapshot(s *mesh.Snapshot) {
	cp.mu.Lock()
	cp.kubeSnap = s
	cp.mu.Unlock()
	cp.push()
}

// push serves the current config: the file source's snapshot, the
// Kubernetes source's, or both merged (Kubernetes' MeshConfig wins). In
// Kubernetes mode nothing is served before its caches have synced.
func (cp *controlPlane) push() {
	cp.mu.Lock()
	fs, ks := cp.fileSnap, cp.kubeSnap
	cp.mu.Unlock()
	s := fs
	switch {
	case cp.kube != nil && ks == nil:
		return
	case ks != nil && fs != nil:
		s = mesh.Merge(ks.Mesh(), fs, ks)
	case ks != nil:
		s = ks
	}
	cp.mu.Lock()
	cp.current = s
	metrics := cp.metrics
	cp.mu.Unlock()
	if metrics != nil {
		setMetricWorkloads(metrics, s)
	}
	cp.jwks.Track(s)
	if err := cp.authz.Update(s); err != nil {
		cp.log.Error("authorization engine not updated; the previous one keeps deciding", "version", s.Version(), "error", err.Error())
	}
	// The sources have already debounced the change; push at once.
	cp.xds.UpdateNow(s)
	if err := cp.nodes.Update(s); err != nil {
		cp.log.Error("node proxy config not updated; node proxies keep the previous one", "version", s.Version(), "error", err.Error())
	}
	cp.ready.Store(true)
	rejected := 0
	if cp.source != nil {
		rejected = len(cp.source.Status().Rejected)
	}
	cp.log.Info("snapshot", "version", s.Version(), "objects", s.Len(), "services", len(s.Services()),
		"workloads", len(s.Workloads()), "rejected", rejected)
}

// setMetricWorkloads tells Istio's standard metrics the snapshot's
// workloads and the services they back, for their workload,
// canonical-service and destination-service labels.
func setMetricWorkloads(m *als.Metrics, s *mesh.Snapshot) {
	backs := map[*mesh.Workload][]als.Service{}
	for _, svc := range s.Services() {
		for _, w := range s.Members(svc) {
			backs[w] = append(backs[w], als.Service{Host: svc.Hostname, Namespace: svc.Namespace})
		}
	}
	ws := make([]als.Workload, 0, len(s.Workloads()))
	for _, w := range s.Workloads() {
		ws = append(ws, als.Workload{Name: w.Name, Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Labels: w.Labels, Services: backs[w]})
	}
	m.SetWorkloads(s.Mesh().WithDefaults().TrustDomain, ws)
}

// snapshot returns what was last served (nil before the first).
func (cp *controlPlane) snapshot() *mesh.Snapshot {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.current
}

// onKeysChanged re-pushes the current snapshot when an issuer's keys
// change (first fetch, rotation, recovery): jwt_authn inlines them.
func (cp *controlPlane) onKeysChanged(issuer string) {
	cp.mu.Lock()
	s := cp.current
	cp.mu.Unlock()
	if s != nil {
		cp.log.Info("jwks changed; pushing", "issuer", issuer)
		cp.xds.Update(s)
	}
	if cp.kube != nil {
		cp.kube.source.Refresh() // RequestAuthentication status
	}
}

// plainXDSAddr is where plaintext ADS listens: --xds-addr (loopback by
// default), but in Kubernetes mode only when --xds-addr was given.
func plainXDSAddr(o serveOptions) string {
	if o.kube.enabled && !o.xdsAddrSet {
		return ""
	}
	return o.xdsAddr
}

// httpsConfig is the CA's serving TLS config offering HTTP/1.1 beside h2
// (curl, Prometheus).
func httpsConfig(c *tls.Config) *tls.Config {
	next := c.GetConfigForClient
	c.NextProtos = []string{"h2", "http/1.1"}
	c.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg, err := next(h)
		if cfg != nil {
			cfg = cfg.Clone()
			cfg.NextProtos = c.NextProtos
		}
		return cfg, err
	}
	return c
}

// logExposure says at startup where the unauthenticated surfaces listen.
func logExposure(log *slog.Logger, debug, plain net.Listener) {
	if plain == nil {
		log.Info("plaintext ADS disabled; proxies use the secure port with their workload certificate")
	} else if isLoopback(plain) {
		log.Info("plaintext ADS listens on loopback only (local development)", "xds_addr", plain.Addr().String())
	} else {
		log.Warn("plaintext ADS is reachable beyond loopback: it serves any node config to unauthenticated callers; bind --xds-addr to 127.0.0.1 or disable it", "xds_addr", plain.Addr().String())
	}
	if isLoopback(debug) {
		log.Info("debug server listens on loopback only", "debug_addr", debug.Addr().String())
	} else {
		log.Info("debug server reachable beyond loopback: /debug/ pages need a client certificate (--debug-tls-addr) or a Kubernetes token; /healthz, /readyz, /metrics are open", "debug_addr", debug.Addr().String())
	}
}

func isLoopback(l net.Listener) bool {
	a, ok := l.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// debugGate authenticates /debug/ callers: loopback, a Ward client
// certificate (--debug-tls-addr), or in Kubernetes mode a service-account
// token (TokenReview).
func (cp *controlPlane) debugGate(o serveOptions) (*access.Gate, error) {
	cfg := access.Config{Log: cp.log, Certificate: cp.ca.ChainIdentity}
	for _, op := range o.operators {
		ns, sa, ok := strings.Cut(op, "/")
		if !ok || ns == "" || sa == "" || strings.Contains(sa, "/") {
			return nil, fmt.Errorf("serve: --debug-operator %q: want <namespace>/<service-account>", op)
		}
		cfg.Operators = append(cfg.Operators, mesh.Identity{Namespace: ns, ServiceAccount: sa})
	}
	if cp.kube != nil {
		cfg.Token = access.TokenReview(kube.TokenReviewer{Client: cp.kube.clients.Kube})
	}
	return access.New(cfg), nil
}

// debugMux serves health, readiness and metrics to anyone, and the debug
// pages through gate: proxies' pages scoped to the caller's namespace,
// control-plane-wide pages to operators only.
func (cp *controlPlane) debugMux(gate *access.Gate) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	var reloads func() error
	if cp.source != nil {
		reloads = cp.source.Healthy
	}
	mux.HandleFunc("GET /readyz", readyz(cp.ready.Load, reloads))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cp.registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /debug/config_dump", gate.Scoped(cp.xds.Handler()))
	mux.Handle("GET /debug/syncz", gate.Scoped(cp.xds.Handler()))
	mux.Handle("GET /debug/connections", gate.Scoped(cp.xds.Handler()))
	mux.Handle("GET /debug/nodez", gate.Operator(cp.nodes.Handler()))
	mux.Handle("GET /debug/ca", gate.Operator(cp.ca.DebugHandler()))
	mux.Handle("GET /debug/ca/issued", gate.Operator(cp.ca.IssuedHandler()))
	mux.Handle("GET /debug/jwks", gate.Operator(cp.jwks.Handler()))
	mux.Handle("GET /debug/configz", gate.Operator(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if cp.source == nil {
			writeJSON(w, map[string]string{"source": "kubernetes"})
			return
		}
		writeJSON(w, cp.source.Status())
	})))
	mux.Handle("GET /debug/calls", gate.Operator(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if cp.calls == nil {
			writeJSON(w, map[string]any{})
			return
		}
		writeJSON(w, map[string]any{"stats": cp.calls.Stats(), "edges": cp.calls.Edges(), "records": cp.calls.Records()})
	})))
	// Anything else under /debug/ is refused the same way, never served.
	mux.Handle("/debug/", gate.Operator(http.NotFoundHandler()))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// serveGRPC serves g on lis until ctx ends, then stops it gracefully,
// cutting streams that outlive a short grace period (xDS streams never end
// by themselves).
func serveGRPC(ctx context.Context, lis net.Listener, g *grpc.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		g.Stop()
	}
	return nil
}

// kubeMode holds the Kubernetes side of `ward serve --kube`.
type kubeMode struct {
	opts    kubeOptions
	log     *slog.Logger
	clients *kube.Clients
	leader  *kube.Leader
	// leaderDone is closed when the campaign has ended and the Lease is
	// released.
	leaderDone chan struct{}
	source     *kube.Source
	mesh       mesh.MeshConfig
}

func newKubeMode(ctx context.Context, o kubeOptions, log *slog.Logger, onSnapshot func(*mesh.Snapshot), analyze func(*mesh.Snapshot) []kube.Problem) (*kubeMode, error) {
	cl, err := kube.NewClients(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	k := &kubeMode{opts: o, log: log, clients: cl}
	// The CA needs the trust domain before the informers run.
	cm, err := cl.Kube.CoreV1().ConfigMaps(o.namespace).Get(ctx, kube.DefaultMeshConfigMap, metav1.GetOptions{})
	switch {
	case err == nil:
		if k.mesh, err = kube.ParseMeshConfig(cm); err != nil {
			return nil, err
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read mesh config %s/%s: %w", o.namespace, kube.DefaultMeshConfigMap, err)
	}
	if k.leader, err = kube.NewLeader(kube.LeaderConfig{Client: cl.Kube, Namespace: o.namespace, Identity: o.identity, Log: log}); err != nil {
		return nil, err
	}
	k.source, err = kube.NewSource(kube.Config{
		Client: cl.Kube, Dynamic: cl.Dynamic, Log: log, Namespace: o.namespace, OnSnapshot: onSnapshot, WriteStatus: true,
		Analyze: analyze, Resync: 30 * time.Second,
	})
	return k, err
}

// analyze finds what Kubernetes mode reports on object status beyond
// validation: authz.Analyze findings and RequestAuthentications whose keys
// cannot be fetched.
func (cp *controlPlane) analyze(s *mesh.Snapshot) []kube.Problem {
	var out []kube.Problem
	for _, f := range authz.Analyze(s) {
		out = append(out, kube.Problem{Key: f.Key, Reason: "Analysis", Message: f.Message})
	}
	for _, c := range s.All(mesh.KindRequestAuthentication) {
		ra, _ := c.Spec.(*securityv1beta1.RequestAuthentication)
		for i, r := range ra.GetJwtRules() {
			if e := cp.jwks.LastError(r.GetIssuer(), r.GetJwksUri()); e != "" {
				out = append(out, kube.Problem{Key: c.Key(), Reason: "JWKSUnavailable",
					Message: fmt.Sprintf("spec.jwtRules[%d]: keys of issuer %s unavailable: %s", i, r.GetIssuer(), e)})
			}
		}
	}
	return out
}

// newCA builds the CA on the ward-ca Secret (created by the leader only),
// or on Istio's cacerts layout when the plug-in directory holds one. The
// leader campaign starts here and runs until ctx ends. Node-scoped
// issuance checks pods (kube.Placement: spec.nodeName, service account,
// ambient enrolment), never WorkloadEntries from --config, whose labels
// namespace users could write to claim a node.
func (k *kubeMode) newCA(ctx context.Context, o serveOptions, m mesh.MeshConfig, reg prometheus.Registerer) (*ca.CA, error) {
	k.leaderDone = make(chan struct{})
	go func() {
		defer close(k.leaderDone)
		_ = k.leader.Run(ctx)
	}()
	cfg := ca.Config{
		StateDir: o.stateDir, TrustDomain: m.TrustDomain, Log: k.log, Metrics: reg,
		DefaultTTL: time.Duration(m.DefaultCertTTL), MaxTTL: time.Duration(m.MaxCertTTL),
		ServerNames: k.opts.serverNames(o.serverNames), ServerIdentity: k.opts.serverIdentity(),
		TokenReviewer: kube.TokenReviewer{Client: k.clients.Kube},
		Placement:     k.source.Placement(),
	}
	o.bounds.applyCA(&cfg)
	if k.opts.pluginDir != "" {
		if _, err := os.Stat(k.opts.pluginDir + "/ca-cert.pem"); err == nil {
			cfg.PluginDir = k.opts.pluginDir
			return ca.New(cfg)
		}
	}
	return kube.NewCA(ctx, kube.SecretStore{Client: k.clients.Kube, Namespace: k.opts.namespace}, k.leader, cfg)
}

// start runs the informers, the leader-only CA reconcile (rotation) and
// trust-bundle writer, the webhooks and their caBundle.
func (k *kubeMode) start(ctx context.Context, g *errgroup.Group, c *ca.CA, webhookLis net.Listener, inj webhook.InjectConfig, m mesh.MeshConfig) error {
	bundles, err := kube.NewBundleSync(kube.BundleConfig{Client: k.clients.Kube, Log: k.log, Bundle: c.BundlePEM, Changed: c.Changed, Leader: k.leader})
	if err != nil {
		return err
	}
	if inj.TrustDomain == "" {
		inj.TrustDomain = m.WithDefaults().TrustDomain
	}
	inj.Namespace, inj.Service = k.opts.namespace, k.opts.service
	wh, err := webhook.New(webhook.Config{Listener: webhookLis, GetCertificate: webhook.FromCA(c), Client: k.clients.Kube, Inject: inj, Log: k.log})
	if err != nil {
		return err
	}
	caBundle, err := webhook.NewCABundleSync(webhook.CABundleConfig{Client: k.clients.Kube, Log: k.log, Bundle: c.BundlePEM, Changed: c.Changed})
	if err != nil {
		return err
	}
	g.Go(func() error { return k.source.Run(ctx) })
	if c.Phase() == ca.PhasePlugin {
		g.Go(func() error { return c.Run(ctx) }) // every replica reloads cacerts
	} else {
		g.Go(func() error { return whileLeading(ctx, k.leader, c.Run) })
		// Every replica follows the ward-ca Secret, so a rotation made by
		// the leader reaches the followers' signing too.
		caWatch, err := kube.NewCAWatch(kube.CAWatchConfig{Store: kube.SecretStore{Client: k.clients.Kube, Namespace: k.opts.namespace}, CA: c, Log: k.log})
		if err != nil {
			return err
		}
		g.Go(func() error { return caWatch.Run(ctx) })
	}
	g.Go(func() error { return bundles.Run(ctx) })
	g.Go(func() error { return wh.Run(ctx) })
	g.Go(func() error { return caBundle.Run(ctx) })
	return nil
}

// whileLeading runs f with a context that ends when leadership ends,
// every time this replica becomes leader, until ctx ends.
func whileLeading(ctx context.Context, l *kube.Leader, f func(context.Context) error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.Elected():
		}
		if lctx := l.LeaderContext(); lctx != nil {
			if err := f(lctx); err != nil {
				return err
			}
		}
	}
}
