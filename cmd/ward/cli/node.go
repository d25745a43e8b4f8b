package cli

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/node"
)

type nodeOptions struct {
	name     string
	config   string
	netnsDir string
	caState  string
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
			"network namespace (<--netns-dir>/<WorkloadEntry name>) and redirects its TCP there with\n" +
			"iptables. Traffic between enrolled workloads is carried over HBONE with the source\n" +
			"workload's identity; arriving connections are judged by PeerAuthentication and the L4\n" +
			"part of AuthorizationPolicy. Config is read (and watched) from --config, the same\n" +
			"Istio YAML tree `ward serve --config` reads; ADS from `ward serve` is the next step\n" +
			"(docs/ambient.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNode(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "this node's name (the ward.io/node label of its workloads)")
	f.StringVar(&o.config, "config", "", "directory of Istio YAML: WorkloadEntry, ServiceEntry, PeerAuthentication, AuthorizationPolicy, MeshConfig")
	f.StringVar(&o.netnsDir, "netns-dir", "/var/run/netns", "directory holding each workload's network namespace, named after its WorkloadEntry")
	f.StringVar(&o.caState, "dev-ca-state-dir", "", "single-machine demos only: sign workload certificates with the CA state in this directory (the --state-dir of `ward serve`); the node then holds the CA key")
	f.StringVar(&o.metrics, "metrics-addr", "", "serve /metrics on this address (connections, bytes, denies per rule, certificate expiry)")
	f.StringVar(&o.decLog, "decision-log", "", "write every inbound verdict as a JSON line to this file (the ext_authz decision log format, rotated by size)")
	f.BoolVar(&o.cleanup, "remove-rules-on-exit", false, "remove the workloads' redirect rules on exit, so their traffic flows unproxied; by default the rules stay and their TCP is refused until a node proxy runs again (fail closed)")
	o.log.addFlags(cmd)
	return cmd
}

func runNode(cmd *cobra.Command, o nodeOptions) error {
	log := o.log.logger(cmd.ErrOrStderr())
	if o.name == "" || o.config == "" {
		return errors.New("node: --name and --config are required")
	}
	if o.caState == "" {
		// Remote issuance needs the CA to check that the workload runs on
		// the calling node (Istio's impersonation rule); until it does,
		// refusing is safer than a node proxy that can ask for anyone.
		return errors.New("node: --dev-ca-state-dir is required: issuing through `ward serve` (node-scoped certificate requests) is not available yet")
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
	issued, err := ca.NewMemoryLog(ca.LogConfig{})
	if err != nil {
		return err
	}
	authority, err := ca.New(ca.Config{StateDir: o.caState, TrustDomain: td.Name(), Log: log, IssuanceLog: issued})
	if err != nil {
		return fmt.Errorf("node: ca: %w", err)
	}
	reg := prometheus.NewRegistry()
	cfg := node.Config{Node: o.name, TrustDomain: td, Snapshot: snap, Issuer: node.LocalCA{CA: authority}, NetnsDir: o.netnsDir, Log: log, Metrics: reg, RemoveRulesOnStop: o.cleanup}
	if o.decLog != "" {
		dl, err := decisionlog.New(decisionlog.Config{Path: o.decLog, Log: log})
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		defer dl.Close()
		cfg.OnDecision = func(d node.Decision) { dl.Log(d.Entry()) }
	}
	p, err = node.New(cfg)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	if o.metrics != "" {
		lis, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return fmt.Errorf("node: metrics: %w", err)
		}
		g.Go(func() error { return serveHTTP(ctx, lis, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) })
	}
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return p.Run(ctx) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
