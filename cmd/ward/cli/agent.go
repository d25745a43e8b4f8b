package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/sds"
)

type agentOptions struct {
	caAddr        string
	trustDomain   string
	caRoot        string
	caServerID    string
	tokenFile     string
	joinTokenFile string
	stateDir      string
	sdsSocket     string
	noSDS         bool
	outputDir     string
	xdsAddr       string
	xdsInsecure   bool
	authz         string
	name          string
	ip            string
	labels        map[string]string
	locality      string
	ttl           time.Duration
	metricsAddr   string
	log           logOptions
}

func newAgentCmd() *cobra.Command {
	o := agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the workload agent: identity from Ward's CA, rotation, SDS and proxyless gRPC files",
		Long: "Run the workload agent. It generates the workload key locally, enrols with the CA\n" +
			"(service-account token or join token, then its own certificate), renews at half\n" +
			"the lifetime, serves the certificate and bundle over SDS on a Unix socket and,\n" +
			"with --output-dir, writes cert-chain.pem, key.pem, root-cert.pem and a grpc xDS\n" +
			"bootstrap for proxyless gRPC.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, o) },
	}
	f := cmd.Flags()
	o.addIdentityFlags(cmd)
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
	o.log.addFlags(cmd)
	cmd.AddCommand(newAgentBootstrapCmd())
	return cmd
}

func (o *agentOptions) addIdentityFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain")
	f.StringVar(&o.caServerID, "ca-server-id", "", "SPIFFE ID of the control plane (default spiffe://<td>/ns/ward-system/sa/ward)")
	f.StringVar(&o.xdsAddr, "xds-addr", "localhost:15012", "address of Ward's xDS server")
	f.StringVar(&o.name, "name", hostname(), "workload name (pod or VM name) for the node id")
	f.StringVar(&o.ip, "ip", "", "workload IP for the node id and INSTANCE_IPS")
	f.StringToStringVar(&o.labels, "labels", nil, "workload labels, k=v,...")
	f.StringVar(&o.locality, "locality", "", "workload locality region/zone/subzone for the grpc bootstrap's node.locality")
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func (o agentOptions) serverID() (spiffeid.ID, error) {
	if o.caServerID != "" {
		return spiffeid.FromString(o.caServerID)
	}
	return mesh.ControlPlaneIdentity(o.trustDomain).SPIFFEID()
}

func runAgent(cmd *cobra.Command, o agentOptions) error {
	log := o.log.logger(cmd.ErrOrStderr())
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
	sid, err := o.serverID()
	if err != nil {
		return fmt.Errorf("agent: ca server id: %w", err)
	}
	reg := prometheus.NewRegistry()
	cfg := agent.Config{CAAddr: o.caAddr, TrustDomain: o.trustDomain, CABundlePEM: bundle, CAServerID: sid,
		TokenFile: o.tokenFile, TTL: o.ttl, OutputDir: o.outputDir, Log: log, Metrics: reg}
	if o.joinTokenFile != "" {
		b, err := os.ReadFile(o.joinTokenFile)
		if err != nil {
			return fmt.Errorf("agent: join token: %w", err)
		}
		cfg.JoinToken = strings.TrimSpace(string(b))
	}
	if o.outputDir != "" {
		cfg.Bootstrap = &agent.GRPCBootstrapConfig{XDSAddress: o.xdsAddr, XDSInsecure: o.xdsInsecure, Name: o.name, IP: o.ip, Labels: o.labels, Authz: o.authz, Locality: o.locality}
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	if !o.noSDS {
		srv, err := sds.NewServer(sds.Config{TrustDomain: o.trustDomain, Log: log})
		if err != nil {
			return err
		}
		lis, err := sds.ListenUnix(o.socket())
		if err != nil {
			return err
		}
		cfg.SDS = srv
		g.Go(func() error { return srv.Serve(ctx, lis) })
		log.Info("sds serving", "socket", o.socket())
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
		g.Go(func() error { return serveHTTP(ctx, lis, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) })
	}
	g.Go(func() error { return a.Run(ctx) })
	return g.Wait()
}

func (o agentOptions) socket() string {
	if o.sdsSocket != "" {
		return o.sdsSocket
	}
	return filepath.Join(o.stateDir, "var", "run", "ward", "sds.sock")
}

func newAgentBootstrapCmd() *cobra.Command {
	o := agentOptions{}
	var envoy bool
	var ns, sa string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print a data-plane bootstrap (--envoy: Envoy with ADS to Ward and SDS from the agent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !envoy {
				return errors.New("agent bootstrap: choose a data plane (--envoy); proxyless gRPC bootstraps are written by `ward agent --output-dir`")
			}
			sid, err := o.serverID()
			if err != nil {
				return err
			}
			b, err := agent.EnvoyBootstrap(agent.EnvoyBootstrapConfig{
				Identity: mesh.Identity{TrustDomain: o.trustDomain, Namespace: ns, ServiceAccount: sa},
				Name:     o.name, IP: o.ip, Labels: o.labels, XDSAddress: o.xdsAddr, ControlPlaneID: sid, SDSSocket: o.socket(),
			})
			if err != nil {
				return err
			}
			out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		},
	}
	o.addIdentityFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&envoy, "envoy", false, "print an Envoy bootstrap (JSON)")
	f.StringVar(&ns, "ns", "default", "workload namespace")
	f.StringVar(&sa, "sa", "default", "workload service account")
	f.StringVar(&o.stateDir, "state", ".", "agent state directory (for the default SDS socket path)")
	f.StringVar(&o.sdsSocket, "sds-socket", "", "the agent's SDS socket (default <state>/var/run/ward/sds.sock)")
	return cmd
}
