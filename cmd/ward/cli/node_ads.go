package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
	"github.com/wardmesh/ward/node/ads"
)

// runNodeADS runs the node proxy on config from `ward serve` over delta
// ADS. The proxy is built from the first complete config: until then no
// workload is enrolled (fail closed: rules a previous run left keep
// refusing their traffic). Later configs apply with SetSnapshot; one
// that does not compile is NACKed and the previous one stays.
func runNodeADS(cmd *cobra.Command, o nodeOptions, log *slog.Logger) error {
	if o.caState != "" {
		return errors.New("node: --xds-addr needs the node certificate from --ca-addr, not --dev-ca-state-dir")
	}
	td, err := spiffeid.TrustDomainFromString(o.td)
	if err != nil {
		return fmt.Errorf("node: --trust-domain: %w", err)
	}
	rcfg, err := remoteConfig(o, td, log)
	if err != nil {
		return err
	}
	issuer, err := node.NewRemoteCA(cmd.Context(), rcfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	cfg, closeLog, err := proxyConfig(o, td, issuer, log)
	if err != nil {
		return err
	}
	defer closeLog()
	started := make(chan *node.Proxy, 1)
	var p *node.Proxy // used by the client's goroutine only
	apply := func(ctx context.Context, snap *mesh.Snapshot) error {
		if got := snap.Mesh().TrustDomain; got != td.Name() {
			return fmt.Errorf("config trust domain %q is not this node's %q", got, td.Name())
		}
		if p != nil {
			err := p.SetSnapshot(ctx, snap)
			if errors.Is(err, node.ErrEnrolment) {
				log.Error("node: enrolment incomplete", "error", err)
				return nil
			}
			return err
		}
		c := cfg
		c.Snapshot = snap
		np, err := node.New(c)
		if err != nil {
			return err
		}
		p = np
		started <- np
		log.Info("node: first config from the control plane", "version", snap.Version(), "workloads", len(snap.Workloads()))
		return nil
	}
	client, err := ads.New(ads.Config{Addr: o.xdsAddr, Creds: credentials.NewTLS(issuer.ClientTLS()), Node: o.name, Apply: apply, Log: log, Metrics: cfg.Metrics})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	if err := serveNodeMetrics(ctx, g, o, cfg.Metrics.(*prometheus.Registry)); err != nil {
		return err
	}
	if err := serveCNI(ctx, g, o, cfg.Sandboxes, log); err != nil {
		return err
	}
	g.Go(func() error { return issuer.Run(ctx) })
	g.Go(func() error { return client.Run(ctx) })
	g.Go(func() error {
		select {
		case np := <-started:
			return np.Run(ctx)
		case <-ctx.Done():
			log.Warn("node: stopped before any config arrived; no workload was served")
			return nil
		}
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
