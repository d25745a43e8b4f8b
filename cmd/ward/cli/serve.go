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

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
)

type serveOptions struct {
	configDir string
	stateDir  string
	debugAddr string
	xdsAddr   string
	quiet     time.Duration
	maxWait   time.Duration
	log       logOptions
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
	debugLis, err := net.Listen("tcp", o.debugAddr)
	if err != nil {
		return fmt.Errorf("debug server: %w", err)
	}
	xdsLis, err := net.Listen("tcp", o.xdsAddr)
	if err != nil {
		debugLis.Close()
		return fmt.Errorf("xds server: %w", err)
	}
	log.Info("ward serving", "config", o.configDir, "state", o.stateDir,
		"debug_addr", debugLis.Addr().String(), "xds_addr", xdsLis.Addr().String())
	xdsGRPC := grpc.NewServer()
	cp.xds.Register(xdsGRPC)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return serveHTTP(ctx, debugLis, cp.debugMux()) })
	g.Go(func() error { return serveGRPC(ctx, xdsLis, xdsGRPC) })
	err = g.Wait()
	log.Info("ward stopped")
	return err
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
