package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/ca/caclient"
	"github.com/wardmesh/ward/internal/httpserve"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/node"
	"github.com/wardmesh/ward/node/cni"
)

type nodeOptions struct {
	name     string
	config   string
	xdsAddr  string
	td       string
	netnsDir string
	cniSock  string
	caState  string
	caAddr   string
	caRoot   string
	caServer string
	token    string
	saToken  string
	stateDir string
	metrics  string
	decLog   string
	cleanup  bool
	log      logOptions
}

func newNodeCmd() *cobra.Command {
	o := nodeOptions{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the ambient node proxy: capture, HBONE mTLS and L4 policy for the workloads on this node",
		Long: "Run the ambient node proxy for one node. Every WorkloadEntry labelled\n" +
			"istio.io/dataplane-mode=ambient and ward.io/node=<--name> is enrolled: the proxy makes\n" +
			"its key, obtains its certificate, opens ports 15001/15006/15008 inside the workload's\n" +
			"network namespace (<--netns-dir>/<WorkloadEntry name>, or in Kubernetes as the CNI plugin reports it,\n" +
			"--cni-socket) and redirects its TCP there with\n" +
			"nf_tables over netlink, from Go (no iptables or ip binary). Traffic between enrolled workloads is carried over HBONE with the source\n" +
			"workload's identity; arriving connections are judged by PeerAuthentication and the L4\n" +
			"part of AuthorizationPolicy. Workload certificates come from `ward serve` (--ca-addr):\n" +
			"the node enrols with its join token (in Kubernetes, --token-file: its pod-bound\n" +
			"ward-node service-account token, from which the CA takes the node) and the CA issues\n" +
			"only the workloads placed on it (in Kubernetes: ambient pods whose spec.nodeName is it).\n" +
			"Config comes from `ward serve` over delta ADS (--xds-addr, authenticated by the node\n" +
			"certificate; nothing is served until the first complete config arrives), or is read\n" +
			"(and watched) from --config, the same Istio YAML tree `ward serve --config` reads\n" +
			"(docs/ambient.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNode(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "this node's name (the ward.io/node label of its workloads)")
	f.StringVar(&o.config, "config", "", "directory of Istio YAML: WorkloadEntry, ServiceEntry, PeerAuthentication, AuthorizationPolicy, MeshConfig (instead of --xds-addr)")
	f.StringVar(&o.xdsAddr, "xds-addr", "", "get config from `ward serve` over delta ADS at this address (its --secure-addr), authenticated by the node certificate from --ca-addr")
	f.StringVar(&o.td, "trust-domain", "cluster.local", "trust domain of the node and workload identities (with --xds-addr; --config takes it from MeshConfig)")
	f.StringVar(&o.netnsDir, "netns-dir", "/var/run/netns", "directory holding each workload's network namespace, named after its WorkloadEntry")
	f.StringVar(&o.cniSock, "cni-socket", "", "Kubernetes: receive each pod's network namespace from the CNI plugin (ward cni) on this Unix socket (0600, e.g. "+cni.DefaultSocket+") instead of --netns-dir; the record is kept beside it in pods.json, so a restart keeps serving the pods already running")
	f.StringVar(&o.caAddr, "ca-addr", "localhost:15012", "address of Ward's certificate service (the --secure-addr of `ward serve`)")
	f.StringVar(&o.caRoot, "ca-root", "", "PEM file with the CA's trust bundle (from: ward ca bundle)")
	f.StringVar(&o.caServer, "ca-server-id", "", "SPIFFE ID of the control plane (default spiffe://<td>/ns/ward-system/sa/ward); its namespace is the node identity's")
	f.StringVar(&o.token, "join-token-file", "", "file holding this node's one-time join token (from: ward ca token create --node <name>)")
	f.StringVar(&o.saToken, "token-file", "", "Kubernetes mode, instead of --join-token-file: file holding this node proxy's projected service-account token (service account ward-node of the control plane's namespace, audience ward-ca, bound to its pod); the CA takes the node from the pod and --name must be that node")
	f.StringVar(&o.stateDir, "state-dir", "", "keep the node key and certificate here (0600) so a restart renews by certificate instead of needing a new join token")
	f.StringVar(&o.caState, "dev-ca-state-dir", "", "single-machine demos only, instead of --ca-addr: sign workload certificates with the CA state in this directory (the --state-dir of `ward serve`); the node then holds the CA key and no placement check is made")
	f.StringVar(&o.metrics, "metrics-addr", "", "serve /metrics on this address (connections, bytes, denies per rule, certificate expiry)")
	f.StringVar(&o.decLog, "decision-log", "", "write every inbound verdict as a JSON line to this file (the ext_authz decision log format, rotated by size)")
	f.BoolVar(&o.cleanup, "remove-rules-on-exit", false, "remove the workloads' redirect rules on exit, so their traffic flows unproxied; by default the rules stay and their TCP is refused until a node proxy runs again (fail closed)")
	o.log.addFlags(cmd)
	return cmd
}

func runNode(cmd *cobra.Command, o nodeOptions) error {
	log := o.log.logger(cmd.ErrOrStderr())
	if o.name == "" || (o.config == "") == (o.xdsAddr == "") {
		return errors.New("node: --name and one of --config or --xds-addr are required")
	}
	if o.xdsAddr != "" {
		return runNodeADS(cmd, o, log)
	}
	var p *node.Proxy
	src, err := file.New(file.Config{Dir: o.config, Log: log, OnSnapshot: func(s *mesh.Snapshot) {
		if p == nil {
			return // the first snapshot builds the proxy below
		}
		if err := p.SetSnapshot(cmd.Context(), s); err != nil {
			log.Error("node: config change not applied", "error", err)
		}
	}})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	snap, err := src.Reload()
	if err != nil {
		return fmt.Errorf("node: config %s: %w", o.config, err)
	}
	td, err := spiffeid.TrustDomainFromString(snap.Mesh().WithDefaults().TrustDomain)
	if err != nil {
		return fmt.Errorf("node: trust domain: %w", err)
	}
	issuer, runIssuer, err := nodeIssuer(cmd.Context(), o, td, log)
	if err != nil {
		return err
	}
	cfg, closeLog, err := proxyConfig(o, td, issuer, log)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg.Snapshot = snap
	p, err = node.New(cfg)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	if err := serveNodeMetrics(ctx, g, o, cfg.Metrics.(*prometheus.Registry)); err != nil {
		return err
	}
	if err := serveCNI(ctx, g, o, cfg.Sandboxes, log); err != nil {
		return err
	}
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return runIssuer(ctx) })
	g.Go(func() error { return p.Run(ctx) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// proxyConfig is the node.Config both config modes share (without the
// snapshot); closeLog closes the decision log.
func proxyConfig(o nodeOptions, td spiffeid.TrustDomain, issuer node.Issuer, log *slog.Logger) (node.Config, func(), error) {
	cfg := node.Config{Node: o.name, TrustDomain: td, Issuer: issuer, NetnsDir: o.netnsDir, Log: log, Metrics: prometheus.NewRegistry(), RemoveRulesOnStop: o.cleanup}
	if o.cniSock != "" {
		sb, err := node.NewSandboxes(filepath.Join(filepath.Dir(o.cniSock), "pods.json"))
		if err != nil {
			return cfg, nil, err
		}
		cfg.Sandboxes = sb
	}
	if o.decLog == "" {
		return cfg, func() {}, nil
	}
	dl, err := decisionlog.New(decisionlog.Config{Path: o.decLog, Log: log})
	if err != nil {
		return cfg, nil, fmt.Errorf("node: %w", err)
	}
	cfg.OnDecision = func(d node.Decision) { dl.Log(d.Entry()) }
	return cfg, func() { dl.Close() }, nil
}

// serveCNI serves the CNI plugin's socket (with --cni-socket) from the
// start, before any config: pods' sandboxes are recorded meanwhile and
// their ADD is not held up waiting for the control plane.
func serveCNI(ctx context.Context, g *errgroup.Group, o nodeOptions, sb *node.Sandboxes, log *slog.Logger) error {
	if sb == nil {
		return nil
	}
	srv, err := cni.Listen(cni.ServerConfig{Path: o.cniSock, Handler: sb.Handle, Log: log})
	if err != nil {
		return fmt.Errorf("node: --cni-socket: %w", err)
	}
	log.Info("node: network namespaces from the CNI plugin", "socket", o.cniSock)
	g.Go(func() error { return srv.Serve(ctx) })
	return nil
}

func serveNodeMetrics(ctx context.Context, g *errgroup.Group, o nodeOptions, reg *prometheus.Registry) error {
	if o.metrics == "" {
		return nil
	}
	lis, err := net.Listen("tcp", o.metrics)
	if err != nil {
		return fmt.Errorf("node: metrics: %w", err)
	}
	g.Go(func() error { return httpserve.Serve(ctx, lis, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) })
	return nil
}

// nodeIssuer returns where workload certificates come from: `ward serve`
// as this node (the CA checks each workload is placed on it), or, with
// --dev-ca-state-dir, the CA state on this machine.
func nodeIssuer(ctx context.Context, o nodeOptions, td spiffeid.TrustDomain, log *slog.Logger) (node.Issuer, func(context.Context) error, error) {
	idle := func(context.Context) error { return nil }
	if o.caState != "" {
		log.Warn("node: signing workload certificates with the local CA state (--dev-ca-state-dir): development only, the node holds the CA key")
		issued, err := ca.NewMemoryLog(ca.LogConfig{})
		if err != nil {
			return nil, nil, err
		}
		authority, err := ca.New(ca.Config{StateDir: o.caState, TrustDomain: td.Name(), Log: log, IssuanceLog: issued})
		if err != nil {
			return nil, nil, fmt.Errorf("node: ca: %w", err)
		}
		return node.LocalCA{CA: authority}, idle, nil
	}
	cfg, err := remoteConfig(o, td, log)
	if err != nil {
		return nil, nil, err
	}
	r, err := node.NewRemoteCA(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	return r, r.Run, nil
}

// nodeNamespace is the namespace of node identities: the control plane's
// (the CA issues .../ns/<its namespace>/sa/ward-node/node/<node>), read
// from its SPIFFE ID, so --ca-server-id of a control plane installed
// outside ward-system moves both.
func nodeNamespace(server spiffeid.ID) string {
	if id, err := mesh.IdentityFromID(server); err == nil {
		return id.Namespace
	}
	return mesh.ControlPlaneNamespace
}

func remoteConfig(o nodeOptions, td spiffeid.TrustDomain, log *slog.Logger) (node.RemoteConfig, error) {
	if o.token != "" && o.saToken != "" {
		return node.RemoteConfig{}, errors.New("node: --join-token-file and --token-file exclude each other")
	}
	if o.caRoot == "" || (o.token == "" && o.saToken == "" && o.stateDir == "") {
		return node.RemoteConfig{}, errors.New("node: --ca-root and --join-token-file or --token-file (or a --state-dir holding the node certificate) are required (or --dev-ca-state-dir on a single machine)")
	}
	pemRoots, err := os.ReadFile(o.caRoot)
	if err != nil {
		return node.RemoteConfig{}, fmt.Errorf("node: --ca-root: %w", err)
	}
	roots, err := caclient.ParseCertificates(pemRoots)
	if err != nil {
		return node.RemoteConfig{}, fmt.Errorf("node: --ca-root %s: %w", o.caRoot, err)
	}
	tok, err := enrolToken(o)
	if err != nil {
		return node.RemoteConfig{}, err
	}
	server, err := mesh.ControlPlaneIdentity(td.Name()).SPIFFEID()
	if o.caServer != "" {
		server, err = spiffeid.FromString(o.caServer)
	}
	if err != nil {
		return node.RemoteConfig{}, fmt.Errorf("node: --ca-server-id: %w", err)
	}
	nodeID, err := ca.NodeID(td, nodeNamespace(server), o.name)
	if err != nil {
		return node.RemoteConfig{}, fmt.Errorf("node: --name: %w", err)
	}
	return node.RemoteConfig{Addr: o.caAddr, NodeID: nodeID, ServerID: server, Roots: roots,
		JoinToken: tok, StateDir: o.stateDir, Log: log}, nil
}

// enrolToken reads the credential the node enrols with: a join token, or
// in Kubernetes its service-account token, which the CA's TokenReview
// authenticator maps to the node of its pod. Both are sent as the bearer
// token of the first request; renewals then go by the node certificate.
func enrolToken(o nodeOptions) (string, error) {
	flag, file := "--join-token-file", o.token
	if o.saToken != "" {
		flag, file = "--token-file", o.saToken
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("node: %s: %w", flag, err)
	}
	tok := strings.TrimSpace(string(b))
	if o.saToken != "" && ca.IsJoinToken(tok) {
		return "", fmt.Errorf("node: --token-file %s holds a join token (use --join-token-file)", file)
	}
	return tok, nil
}
