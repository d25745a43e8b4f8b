// Package agentcli is the `agent` command shared by the ward binary
// (`ward agent`) and the slim ward-agent binary: flags and wiring of the
// workload agent (enrolment, rotation, SDS, proxyless files, metrics).
// It imports only what the agent runs, so that ward-agent links neither
// the control plane nor the operator tools (see cmd/ward-agent).
package agentcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/internal/httpserve"
	"github.com/wardmesh/ward/internal/version"
	"github.com/wardmesh/ward/mesh/identity"
	"github.com/wardmesh/ward/sds"
)

// IdentityFlags are the flags naming the workload and the control plane,
// shared with `ward agent bootstrap`.
type IdentityFlags struct {
	TrustDomain string
	CAServerID  string
	XDSAddr     string
	Name        string
	IP          string
	Labels      map[string]string
	Locality    string
}

// AddFlags registers the identity flags on cmd.
func (o *IdentityFlags) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.TrustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain")
	f.StringVar(&o.CAServerID, "ca-server-id", "", "SPIFFE ID of the control plane (default spiffe://<td>/ns/ward-system/sa/ward)")
	f.StringVar(&o.XDSAddr, "xds-addr", "localhost:15012", "address of Ward's xDS server")
	f.StringVar(&o.Name, "name", hostname(), "workload name (pod or VM name) for the node id")
	f.StringVar(&o.IP, "ip", "", "workload IP for the node id and INSTANCE_IPS")
	f.StringToStringVar(&o.Labels, "labels", nil, "workload labels, k=v,...")
	f.StringVar(&o.Locality, "locality", "", "workload locality region/zone/subzone for the grpc bootstrap's node.locality")
}

// ServerID is the control plane's SPIFFE ID: --ca-server-id, else the
// default control-plane identity in the trust domain.
func (o IdentityFlags) ServerID() (spiffeid.ID, error) {
	if o.CAServerID != "" {
		return spiffeid.FromString(o.CAServerID)
	}
	return identity.ControlPlane(o.TrustDomain).SPIFFEID()
}

// Socket is the SDS socket path: sdsSocket, else under the state dir.
func Socket(stateDir, sdsSocket string) string {
	if sdsSocket != "" {
		return sdsSocket
	}
	return filepath.Join(stateDir, "var", "run", "ward", "sds.sock")
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

type options struct {
	id            IdentityFlags
	caAddr        string
	caRoot        string
	tokenFile     string
	joinTokenFile string
	stateDir      string
	sdsSocket     string
	noSDS         bool
	outputDir     string
	xdsInsecure   bool
	authz         string
	ttl           time.Duration
	metricsAddr   string
	logLevel      string
	logFormat     string
}

// Command returns the agent command named use ("agent" under ward,
// "ward-agent" as a binary of its own).
func Command(use string) *cobra.Command {
	o := options{}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run the workload agent: identity from Ward's CA, rotation, SDS and proxyless gRPC files",
		Long: "Run the workload agent. It generates the workload key locally, enrols with the CA\n" +
			"(service-account token or join token, then its own certificate), renews at half\n" +
			"the lifetime, serves the certificate and bundle over SDS on a Unix socket and,\n" +
			"with --output-dir, writes cert-chain.pem, key.pem, root-cert.pem and a grpc xDS\n" +
			"bootstrap for proxyless gRPC.",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	f := cmd.Flags()
	o.id.AddFlags(cmd)
	f.StringVar(&o.caAddr, "ca-addr", "localhost:15012", "address of Ward's certificate service")
	f.StringVar(&o.caRoot, "ca-root", "", "PEM file with the CA's trust bundle (from: ward ca bundle); required")
	f.StringVar(&o.tokenFile, "token-file", "", "Kubernetes service-account token file (audience ward-ca)")
	f.StringVar(&o.joinTokenFile, "join-token-file", "", "file holding a one-time join token (from: ward ca token create)")
	f.StringVar(&o.stateDir, "state", ".", "agent state directory; the SDS socket defaults to <state>/var/run/ward/sds.sock")
	f.StringVar(&o.sdsSocket, "sds-socket", "", "SDS Unix socket path (default <state>/var/run/ward/sds.sock)")
	f.BoolVar(&o.noSDS, "no-sds", false, "do not serve SDS (proxyless gRPC only)")
	f.StringVar(&o.outputDir, "output-dir", "", "write certificate files and the grpc bootstrap here (proxyless gRPC)")
	f.BoolVar(&o.xdsInsecure, "xds-insecure", false, "plaintext channel to the xDS server in the grpc bootstrap (local development)")
	f.StringVar(&o.authz, "authz", agent.AuthzRBAC, "how the proxyless gRPC workload enforces authorisation, written as WARD_AUTHZ in the grpc bootstrap: "+
		"rbac (Ward sends native xDS RBAC) or ext-authz (Ward sends no RBAC; the application enforces with the authz/grpcauthz interceptor through Ward's ext_authz server, JWTs included)")
	f.DurationVar(&o.ttl, "ttl", 0, "certificate lifetime to request (0 = the CA's default)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics on this address")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func run(cmd *cobra.Command, o options) error {
	log := logger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
	if o.caRoot == "" {
		return errors.New("agent: --ca-root is required")
	}
	if o.authz != agent.AuthzRBAC && o.authz != agent.AuthzExtAuthz {
		return fmt.Errorf("agent: --authz %q: want %s or %s", o.authz, agent.AuthzRBAC, agent.AuthzExtAuthz)
	}
	bundle, err := os.ReadFile(o.caRoot)
	if err != nil {
		return fmt.Errorf("agent: ca root: %w", err)
	}
	sid, err := o.id.ServerID()
	if err != nil {
		return fmt.Errorf("agent: ca server id: %w", err)
	}
	reg := prometheus.NewRegistry()
	cfg := agent.Config{CAAddr: o.caAddr, TrustDomain: o.id.TrustDomain, CABundlePEM: bundle, CAServerID: sid,
		TokenFile: o.tokenFile, TTL: o.ttl, OutputDir: o.outputDir, Log: log, Metrics: reg}
	if o.joinTokenFile != "" {
		b, err := os.ReadFile(o.joinTokenFile)
		if err != nil {
			return fmt.Errorf("agent: join token: %w", err)
		}
		cfg.JoinToken = strings.TrimSpace(string(b))
	}
	if o.outputDir != "" {
		cfg.Bootstrap = &agent.GRPCBootstrapConfig{XDSAddress: o.id.XDSAddr, XDSInsecure: o.xdsInsecure, Name: o.id.Name, IP: o.id.IP,
			Labels: o.id.Labels, Authz: o.authz, Locality: o.id.Locality}
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	if !o.noSDS {
		srv, err := sds.NewServer(sds.Config{TrustDomain: o.id.TrustDomain, Log: log})
		if err != nil {
			return err
		}
		socket := Socket(o.stateDir, o.sdsSocket)
		lis, err := sds.ListenUnix(socket)
		if err != nil {
			return err
		}
		cfg.SDS = srv
		g.Go(func() error { return srv.Serve(ctx, lis) })
		log.Info("sds serving", "socket", socket)
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if o.metricsAddr != "" {
		lis, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("agent: metrics: %w", err)
		}
		g.Go(func() error { return httpserve.Serve(ctx, lis, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) })
	}
	g.Go(func() error { return a.Run(ctx) })
	return g.Wait()
}

// logger is ward's --log-level/--log-format logger (as cmd/ward/cli's).
func logger(w io.Writer, level, format string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Main runs the agent as the ward-agent binary and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := Command("ward-agent")
	cmd.AddCommand(VersionCommand())
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ward-agent:", err)
		os.Exit(1)
	}
}

// VersionCommand is `ward-agent version`: the version alone, --long for
// the revision, Go version, platform and linked modules, --json (or -o
// json) for all of it as JSON. (No YAML: ward-agent links no YAML library.)
func VersionCommand() *cobra.Command {
	var output string
	var long, asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the ward-agent version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			w := cmd.OutOrStdout()
			switch {
			case asJSON || output == "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			case output != "" && output != "table":
				return fmt.Errorf("unknown output format %q (valid: table, json)", output)
			case long:
				return v.WriteText(w, true)
			}
			_, err := fmt.Fprintln(w, v.Version)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&long, "long", false, "print the revision, Go version, platform and every linked module")
	cmd.Flags().BoolVar(&asJSON, "json", false, "the same as -o json")
	return cmd
}
