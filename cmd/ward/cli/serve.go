package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
)

type serveOptions struct {
	configDir   string
	stateDir    string
	debugAddr   string
	xdsAddr     string
	secureAddr  string
	serverNames []string
	quiet       time.Duration
	maxWait     time.Duration
	log         logOptions
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
			return runServe(cmd.Context(), o, o.log.logger(cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config", "examples", "directory of Istio YAML to serve (watched for changes)")
	f.StringVar(&o.stateDir, "state", ".state", "directory for control-plane state (CA keys); created with mode 0700")
	f.StringVar(&o.debugAddr, "debug-addr", ":15014", "address of the health, metrics and debug HTTP server")
	f.StringVar(&o.xdsAddr, "xds-addr", ":15010", "address of the plaintext ADS server (local development)")
	f.StringVar(&o.secureAddr, "secure-addr", ":15012", "address of the TLS server: certificate signing (IstioCertificateService) and ADS over mTLS")
	f.StringSliceVar(&o.serverNames, "server-name", []string{"localhost", "127.0.0.1"}, "DNS names or IPs agents use to reach the control plane (in its serving certificate)")
	f.DurationVar(&o.quiet, "debounce", 100*time.Millisecond, "quiet period before config changes are applied")
	f.DurationVar(&o.maxWait, "debounce-max", time.Second, "longest a stream of changes can delay an update")
	o.log.addFlags(cmd)
	return cmd
}

// controlPlane holds the running parts of `ward serve`.
type controlPlane struct {
	log      *slog.Logger
	registry *prometheus.Registry
	source   *file.Source
	xds      *xds.Server
	ca       *ca.CA
	ready    atomic.Bool
}

func runServe(ctx context.Context, o serveOptions, log *slog.Logger) error {
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	cp := &controlPlane{log: log, registry: prometheus.NewRegistry()}
	cp.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	src, err := file.New(file.Config{
		Dir: o.configDir, Log: log, Quiet: o.quiet, MaxWait: o.maxWait,
		Registry: cp.registry, OnSnapshot: cp.onSnapshot,
	})
	if err != nil {
		return err
	}
	cp.source = src
	cp.xds = xds.NewServer(xds.Config{Log: log, Registry: cp.registry, Debounce: o.quiet, MaxDebounce: o.maxWait})
	defer cp.xds.Close()
	// The first load happens before anything listens: the CA needs the
	// mesh's trust domain and TTLs, and readiness needs a snapshot.
	first, err := src.Reload()
	if err != nil {
		return err
	}
	if cp.ca, err = newCA(o, first.Mesh(), log, cp.registry); err != nil {
		return err
	}
	listeners, err := listenAll(o.debugAddr, o.xdsAddr, o.secureAddr)
	if err != nil {
		return err
	}
	log.Info("ward serving", "config", o.configDir, "state", o.stateDir, "trust_domain", first.Mesh().TrustDomain,
		"debug_addr", listeners[0].Addr().String(), "xds_addr", listeners[1].Addr().String(),
		"secure_addr", listeners[2].Addr().String())
	plain := grpc.NewServer()
	cp.xds.Register(plain)
	secure := grpc.NewServer(grpc.Creds(credentials.NewTLS(cp.ca.ServerTLSConfig())))
	cp.ca.Register(secure)
	cp.xds.Register(secure)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return cp.ca.Run(ctx) })
	g.Go(func() error { return serveHTTP(ctx, listeners[0], cp.debugMux()) })
	g.Go(func() error { return serveGRPC(ctx, listeners[1], plain) })
	g.Go(func() error { return serveGRPC(ctx, listeners[2], secure) })
	err = g.Wait()
	log.Info("ward stopped")
	return err
}

func newCA(o serveOptions, m mesh.MeshConfig, log *slog.Logger, reg prometheus.Registerer) (*ca.CA, error) {
	return ca.New(ca.Config{
		StateDir: o.stateDir, TrustDomain: m.TrustDomain, Log: log, Metrics: reg,
		DefaultTTL: time.Duration(m.DefaultCertTTL), MaxTTL: time.Duration(m.MaxCertTTL),
		ServerNames: o.serverNames,
	})
}

// listenAll opens every address or none.
func listenAll(addrs ...string) ([]net.Listener, error) {
	var out []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func (cp *controlPlane) onSnapshot(s *mesh.Snapshot) {
	// The file source has already debounced the change; push at once.
	cp.xds.UpdateNow(s)
	cp.ready.Store(true)
	st := cp.source.Status()
	cp.log.Info("snapshot", "version", s.Version(), "objects", s.Len(), "services", len(s.Services()),
		"workloads", len(s.Workloads()), "rejected", len(st.Rejected))
}

func (cp *controlPlane) debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !cp.ready.Load() {
			http.Error(w, "waiting for the first config snapshot", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(cp.registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /debug/config_dump", cp.xds.Handler())
	mux.Handle("GET /debug/syncz", cp.xds.Handler())
	mux.Handle("GET /debug/connections", cp.xds.Handler())
	mux.Handle("GET /debug/ca", cp.ca.DebugHandler())
	mux.HandleFunc("GET /debug/configz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, cp.source.Status())
	})
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

// serveHTTP serves h on lis until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
