package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wardmesh/ward/audit"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/telemetry/als"
)

type auditOptions struct {
	kube      auditKube
	configDir string
	server    string
	caState   string
	decisions []string
	calls     []string
	since     string
	until     string
	output    string
	outFile   string
	failOn    string
	threshold time.Duration
}

// exitFindings is the status of `ward audit --fail-on` when findings reach
// the threshold (1 stays "the audit could not run").
const exitFindings = 3

func newAuditCmd() *cobra.Command {
	o := auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Compliance report: mTLS and authorization coverage, JWT ingress, certificates, decisions, findings",
		Long: "Audit a mesh config with the same matching code the translators use and report coverage,\n" +
			"findings mapped to NIST SP 800-207 / PCI DSS v4.0 / SOC 2 control ids and STRICT readiness.\n" +
			"Exit status: 0 ok, 3 a finding at or above --fail-on, 1 error.\n\n" +
			"Sources: --config DIR (the objects); --server adds the running control plane's CA and JWKS state.\n\n" +
			"  ward audit --config examples --server http://127.0.0.1:15014 -o json\n" +
			"  ward audit --config examples --ca-state /var/lib/ward --decisions decisions.log -o html --out report.html",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAudit(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config", "", "config directory to audit (or --kube)")
	o.kube.addFlags(f)
	f.StringVar(&o.server, "server", "", "debug address of a running ward serve (e.g. http://127.0.0.1:15014): live CA and JWKS health")
	f.StringVar(&o.caState, "ca-state", "", "ward serve --state dir whose CA state (ca/ca.json) to inventory, read-only")
	f.StringSliceVar(&o.decisions, "decisions", nil, "authz decision log files (JSON lines, e.g. decisions.log,decisions.log.1) for decision statistics")
	f.StringSliceVar(&o.calls, "calls", nil, "call-record files of ward serve's access-log service (JSON lines: <state>/calls.log, calls.log.1, …) for the observed-traffic section")
	f.StringVar(&o.since, "since", "", "only decisions and calls at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	f.StringVar(&o.until, "until", "", "only decisions and calls before this time (RFC 3339)")
	addOutputFlag(cmd, &o.output, audit.Formats...)
	f.StringVar(&o.outFile, "out", "", "write the report to this file instead of stdout")
	f.StringVar(&o.failOn, "fail-on", "", "exit 3 when a finding has this severity or higher: high|medium|low|info")
	f.DurationVar(&o.threshold, "expiry-threshold", audit.DefaultExpiryThreshold, "flag certificates expiring within this duration")
	cmd.MarkFlagsMutuallyExclusive("config", "kube")
	cmd.MarkFlagsOneRequired("config", "kube")
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"high", "medium", "low", "info"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runAudit(cmd *cobra.Command, o auditOptions) error {
	var failOn audit.Severity
	if o.failOn != "" {
		s, ok := audit.ParseSeverity(o.failOn)
		if !ok {
			return fmt.Errorf("audit: --fail-on %q: want high, medium, low or info", o.failOn)
		}
		failOn = s
	}
	now := time.Now()
	in, err := o.input(cmd, now)
	if err != nil {
		return err
	}
	r := audit.Build(in)
	if err := o.write(cmd.OutOrStdout(), r); err != nil {
		return err
	}
	if failOn != "" && r.Max().Rank() >= failOn.Rank() {
		return &ExitError{Code: exitFindings, Err: fmt.Errorf("audit: findings at or above %s (highest: %s)", failOn, r.Max())}
	}
	return nil
}

func (o auditOptions) input(cmd *cobra.Command, now time.Time) (audit.Input, error) {
	in, err := o.source(cmd, now)
	if err != nil {
		return in, err
	}
	if o.server != "" {
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		st, err := audit.FetchServer(ctx, http.DefaultClient, o.server)
		cancel()
		if err != nil {
			return in, fmt.Errorf("audit: --server: %w", err)
		}
		in.CA, in.JWKS = st.CA, st.JWKS
	}
	if o.caState != "" {
		st, err := audit.LoadCA(o.caState, in.Snapshot.Mesh().WithDefaults().TrustDomain)
		if err != nil {
			return in, err
		}
		in.CA = st
	}
	if len(o.decisions) > 0 {
		if in.Decisions, err = o.readDecisions(now); err != nil {
			return in, err
		}
	}
	if len(o.calls) > 0 {
		if in.Calls, err = o.readCalls(now); err != nil {
			return in, err
		}
	}
	return in, nil
}

// readCalls reads --calls, keeping records within --since/--until.
func (o auditOptions) readCalls(now time.Time) ([]als.Record, error) {
	from, err := parseSince(o.since, now)
	if err != nil {
		return nil, err
	}
	var to time.Time
	if o.until != "" {
		if to, err = time.Parse(time.RFC3339, o.until); err != nil {
			return nil, fmt.Errorf("audit: --until %q: %w", o.until, err)
		}
	}
	all := []als.Record{}
	for _, path := range o.calls {
		rs, err := readCallFile(path)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		for _, r := range rs {
			if (from.IsZero() || !r.Time.Before(from)) && (to.IsZero() || r.Time.Before(to)) {
				all = append(all, r)
			}
		}
	}
	return all, nil
}

// source loads the snapshot from --config or --kube (with the CA Secret).
func (o auditOptions) source(cmd *cobra.Command, now time.Time) (audit.Input, error) {
	in := audit.Input{Source: o.configDir, Now: now, ExpiryThreshold: o.threshold}
	if o.kube.enabled {
		snap, cl, err := o.kube.snapshot(cmd.Context())
		if err != nil {
			return in, fmt.Errorf("audit: %w", err)
		}
		in.Snapshot, in.Source = snap, "kubernetes"
		if o.caState == "" && o.server == "" {
			if in.CA, err = o.kube.kubeCA(cl, snap.Mesh().WithDefaults().TrustDomain); err != nil {
				return in, fmt.Errorf("audit: %w", err)
			}
		}
		return in, nil
	}
	res, err := file.Load(o.configDir)
	if err != nil {
		return in, fmt.Errorf("audit: load %s: %w", o.configDir, err)
	}
	in.Snapshot = res.Snapshot
	for _, rj := range res.Rejected {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: rejected: %v\n", rj.Err)
		in.Rejected = append(in.Rejected, rj.Err.Error())
	}
	for _, bf := range res.BrokenFiles {
		in.Rejected = append(in.Rejected, "unreadable file "+bf)
	}
	return in, nil
}

func (o auditOptions) readDecisions(now time.Time) ([]audit.Entry, error) {
	from, err := parseSince(o.since, now)
	if err != nil {
		return nil, err
	}
	var to time.Time
	if o.until != "" {
		if to, err = time.Parse(time.RFC3339, o.until); err != nil {
			return nil, fmt.Errorf("audit: --until %q: %w", o.until, err)
		}
	}
	all := []audit.Entry{}
	for _, path := range o.decisions {
		ds, err := readDecisionFile(path, from, to)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	return all, nil
}

func readDecisionFile(path string, from, to time.Time) ([]audit.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: open decision log: %w", err)
	}
	defer f.Close()
	ds, err := audit.ReadDecisions(f, from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	return ds, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: --since %q: want RFC 3339 or a duration: %w", s, err)
	}
	return t, nil
}

func (o auditOptions) write(stdout io.Writer, r *audit.Report) error {
	if o.outFile == "" {
		return audit.Render(stdout, r, o.output)
	}
	f, err := os.Create(o.outFile)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err = audit.Render(f, r, o.output)
	return errors.Join(err, f.Close())
}

// auditKube are the flags that read config from a cluster instead of a
// directory (the same informer source as `ward serve --kube`, never
// writing status).
type auditKube struct {
	enabled    bool
	kubeconfig string
	namespace  string
}

func (k *auditKube) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&k.enabled, "kube", false, "read Istio config and workloads from Kubernetes (and the CA from the ward-ca Secret) instead of --config")
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
	f.StringVar(&k.namespace, "kube-namespace", kube.DefaultNamespace, "Ward's namespace: MeshConfig ConfigMap and CA Secret")
}

// kubeTimeout bounds the wait for the informers' first snapshot.
const kubeTimeout = time.Minute

// snapshot syncs the Kubernetes source once and returns its first
// snapshot.
func (k *auditKube) snapshot(ctx context.Context) (*mesh.Snapshot, *kube.Clients, error) {
	cl, err := kube.NewClients(k.kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("kube clients: %w", err)
	}
	first := make(chan *mesh.Snapshot, 1)
	src, err := kube.NewSource(kube.Config{Client: cl.Kube, Dynamic: cl.Dynamic, Namespace: k.namespace,
		Log: slog.New(slog.DiscardHandler), OnSnapshot: func(s *mesh.Snapshot) {
			select {
			case first <- s:
			default:
			}
		}})
	if err != nil {
		return nil, nil, fmt.Errorf("kube source: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kubeTimeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	select {
	case s := <-first:
		cancel()
		<-errc
		return s, cl, nil
	case err := <-errc:
		return nil, nil, fmt.Errorf("kube source: %w", err)
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("kube source: no snapshot within %s: %w", kubeTimeout, ctx.Err())
	}
}

// kubeCA reads the CA from the ward-ca Secret; a missing Secret is not an
// error (the inventory then says no CA state was found).
func (k *auditKube) kubeCA(cl *kube.Clients, trustDomain string) (*ca.Status, error) {
	dir, err := os.MkdirTemp("", "ward-audit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := audit.StoreCA(kube.SecretStore{Client: cl.Kube, Namespace: k.namespace}, dir, trustDomain)
	if errors.Is(err, audit.ErrNoCAState) {
		return nil, nil
	}
	return st, err
}
