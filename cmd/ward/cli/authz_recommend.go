package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/recommend"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/telemetry/als"
)

type authzRecommendOptions struct {
	configDir  string
	stateDir   string
	calls      []string
	server     string
	window     time.Duration
	enforce    bool
	collapseAt int
	// includeRestricted also proposes policies for workloads that
	// already have an enforced ALLOW policy.
	includeRestricted bool
}

func newAuthzRecommendCmd() *cobra.Command {
	o := authzRecommendOptions{}
	cmd := &cobra.Command{
		Use:   "recommend",
		Short: "Propose least-privilege AuthorizationPolicies from observed calls, dry-run first",
		Long: "Read the call records of ward serve's access-log service (its state dir's calls.log\n" +
			"and rotated files, JSON-lines files, or a running server's /debug/calls) and propose,\n" +
			"per destination workload, ALLOW policies for exactly the sources, ports, methods and\n" +
			"paths seen allowed (paths collapse to <parent>/* when --collapse-at siblings were seen).\n" +
			"The YAML carries the evidence and is in dry-run (istio.io/dry-run: \"true\") unless\n" +
			"--enforce. With --config, selectors come from the workloads' labels and every\n" +
			"recorded allowed call is decided against the config plus the enforced\n" +
			"recommendation with Ward's engine; a call it would deny fails the command (exit 1).\n\n" +
			"  ward authz recommend --state .state --config DIR --window 168h > recommended.yaml\n" +
			"  ward authz recommend --server http://127.0.0.1:15014 --config DIR",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuthzRecommend(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config", "", "config directory of Istio YAML: selectors from its workloads, and verification with Ward's engine")
	f.StringVar(&o.stateDir, "state", "", "ward serve's state directory: read calls.log and its rotated files")
	f.StringArrayVar(&o.calls, "calls", nil, "a JSON-lines call-record file (repeatable)")
	f.StringVar(&o.server, "server", "", "debug URL of a running ward serve: read /debug/calls (its in-memory records)")
	f.DurationVar(&o.window, "window", 0, "use only records this long before the newest one (0: all)")
	f.BoolVar(&o.enforce, "enforce", false, "emit enforcing policies (the rollout's last step) instead of dry-run")
	f.IntVar(&o.collapseAt, "collapse-at", 3, "distinct paths under one parent that make it a <parent>/* prefix")
	f.BoolVar(&o.includeRestricted, "include-restricted", false, "with --config, also propose for workloads that already have an enforced ALLOW policy (ALLOW policies add up: this can widen their access)")
	return cmd
}

func runAuthzRecommend(cmd *cobra.Command, o authzRecommendOptions) error {
	records, err := o.records(cmd.Context())
	if err != nil {
		return err
	}
	calls := callsOf(records, o.window)
	cfg := recommend.Config{CollapseAt: o.collapseAt}
	var snap *mesh.Snapshot
	if o.configDir != "" {
		res, err := file.Load(o.configDir)
		if err != nil {
			return fmt.Errorf("authz recommend: load %s: %w", o.configDir, err)
		}
		snap = res.Snapshot
		cfg.Selector = recommend.SelectorFrom(recommendWorkloads(snap))
		if !o.includeRestricted {
			calls = withoutRestricted(cmd, snap, calls)
		}
	}
	result := recommend.Recommend(calls, cfg)
	out, err := result.YAML(!o.enforce)
	if err != nil {
		return err
	}
	if snap != nil {
		if err := verifyRecommendation(cmd, snap, result, calls); err != nil {
			return err
		}
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}

// records reads every source given; at least one is required.
func (o authzRecommendOptions) records(ctx context.Context) ([]als.Record, error) {
	if o.stateDir == "" && len(o.calls) == 0 && o.server == "" {
		return nil, errors.New("authz recommend: give --state DIR, --calls FILE or --server URL")
	}
	var all []als.Record
	files := o.calls
	if o.stateDir != "" {
		files = append(stateCallFiles(o.stateDir), files...)
	}
	for _, f := range files {
		rs, err := readCallFile(f)
		if err != nil {
			return nil, fmt.Errorf("authz recommend: %w", err)
		}
		all = append(all, rs...)
	}
	if o.server != "" {
		var page struct {
			Records []als.Record `json:"records"`
		}
		if err := getJSON(ctx, o.server, "/debug/calls", &page); err != nil {
			return nil, fmt.Errorf("authz recommend: %w", err)
		}
		all = append(all, page.Records...)
	}
	return all, nil
}

// stateCallFiles lists calls.log.3 … calls.log.1, calls.log that exist.
func stateCallFiles(dir string) []string {
	var out []string
	for i := 9; i >= 0; i-- {
		name := "calls.log"
		if i > 0 {
			name += "." + strconv.Itoa(i)
		}
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// readCallFile decodes a JSON-lines record file.
func readCallFile(path string) ([]als.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open call records: %w", err)
	}
	defer f.Close()
	rs, err := als.ReadRecords(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// callsOf keeps the records within window of the newest and turns them
// into calls. Only records naming the destination principal (those a
// destination reported) say which workload a policy must allow; the port
// is the one of the inbound|<port>|… cluster.
func callsOf(records []als.Record, window time.Duration) []recommend.Call {
	var newest time.Time
	for _, r := range records {
		if r.Time.After(newest) {
			newest = r.Time
		}
	}
	var out []recommend.Call
	for _, r := range records {
		if window > 0 && r.Time.Before(newest.Add(-window)) {
			continue
		}
		out = append(out, recommend.Call{
			Time: r.Time, Source: r.Source, Destination: r.Destination, SourceAddress: r.SourceAddress,
			Port: inboundPort(r.Cluster), Protocol: r.Protocol, Method: r.Method, Path: r.Path, Denied: r.Denied,
		})
	}
	return out
}

func inboundPort(cluster string) uint32 {
	parts := strings.Split(cluster, "|")
	if len(parts) < 2 || parts[0] != "inbound" {
		return 0
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0
	}
	return uint32(p)
}

func recommendWorkloads(snap *mesh.Snapshot) []recommend.Workload {
	var out []recommend.Workload
	for _, w := range snap.Workloads() {
		if w.ServiceAccount != "" {
			out = append(out, recommend.Workload{Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Labels: w.Labels})
		}
	}
	return out
}

// withoutRestricted drops the calls to identities a workload of which
// already has an enforced ALLOW policy: ALLOW policies add up, so a
// recommendation there could only widen access (e.g. allow by principal
// what the config allows only with a token). It says which on stderr.
func withoutRestricted(cmd *cobra.Command, snap *mesh.Snapshot, calls []recommend.Call) []recommend.Call {
	restricted := map[string]bool{}
	for _, w := range snap.Workloads() {
		if w.ServiceAccount != "" && hasAllowPolicy(snap, w) {
			restricted[w.Namespace+"/"+w.ServiceAccount] = true
		}
	}
	out := calls[:0:0]
	skipped := map[string]int{}
	for _, c := range calls {
		ns, sa, ok := spiffeParts(c.Destination)
		if ok && restricted[ns+"/"+sa] {
			skipped[ns+"/"+sa]++
			continue
		}
		out = append(out, c)
	}
	keys := make([]string, 0, len(skipped))
	for k := range skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %d calls to %s not used: it already has an enforced ALLOW policy (--include-restricted to propose anyway)\n", skipped[k], k)
	}
	return out
}

func hasAllowPolicy(snap *mesh.Snapshot, w *mesh.Workload) bool {
	for _, c := range authz.PoliciesFor(snap, w.Namespace, w.Labels) {
		if p, err := authz.FromConfig(c); err == nil && p.Action == authz.ActionAllow && !p.DryRun {
			return true
		}
	}
	return false
}
