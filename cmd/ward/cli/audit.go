package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/audit"
	"github.com/wardmesh/ward/mesh/file"
)

type auditOptions struct {
	configDir string
	server    string
	caState   string
	decisions []string
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
	f.StringVar(&o.configDir, "config", "", "config directory to audit (required)")
	f.StringVar(&o.server, "server", "", "debug address of a running ward serve (e.g. http://127.0.0.1:15014): live CA and JWKS health")
	f.StringVar(&o.caState, "ca-state", "", "ward serve --state dir whose CA state (ca/ca.json) to inventory, read-only")
	f.StringSliceVar(&o.decisions, "decisions", nil, "authz decision log files (JSON lines, e.g. decisions.log,decisions.log.1) for decision statistics")
	f.StringVar(&o.since, "since", "", "only decisions at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	f.StringVar(&o.until, "until", "", "only decisions before this time (RFC 3339)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: "+strings.Join(audit.Formats, "|"))
	f.StringVar(&o.outFile, "out", "", "write the report to this file instead of stdout")
	f.StringVar(&o.failOn, "fail-on", "", "exit 3 when a finding has this severity or higher: high|medium|low|info")
	f.DurationVar(&o.threshold, "expiry-threshold", audit.DefaultExpiryThreshold, "flag certificates expiring within this duration")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(audit.Formats, cobra.ShellCompDirectiveNoFileComp))
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
	stderr := cmd.ErrOrStderr()
	res, err := file.Load(o.configDir)
	if err != nil {
		return audit.Input{}, fmt.Errorf("audit: load %s: %w", o.configDir, err)
	}
	in := audit.Input{Snapshot: res.Snapshot, Source: o.configDir, Now: now, ExpiryThreshold: o.threshold}
	for _, rj := range res.Rejected {
		fmt.Fprintf(stderr, "warning: rejected: %v\n", rj.Err)
		in.Rejected = append(in.Rejected, rj.Err.Error())
	}
	for _, bf := range res.BrokenFiles {
		in.Rejected = append(in.Rejected, "unreadable file "+bf)
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
		st, err := audit.LoadCA(o.caState, res.Snapshot.Mesh().TrustDomain)
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
