package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/audit/analyze"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds"
)

// exitAnalyzeErrors is the status of `ward analyze` when a diagnostic has
// error severity (1 stays "could not run").
const exitAnalyzeErrors = 3

func newAnalyzeCmd() *cobra.Command {
	var configDir, output, server string
	var listCodes bool
	var k auditKube
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Analyze a config directory: broken references, conflicting or ignored policies, surprises",
		Long: "Run Ward's config analyzers (stable codes WAxxxx, see `ward analyze --codes` and docs/audit.md).\n" +
			"Exit status: 0 no errors (warnings allowed), 3 at least one error, 1 the analysis could not run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listCodes {
				return writeCodes(cmd.OutOrStdout())
			}
			if k.enabled {
				snap, _, err := k.snapshot(cmd.Context())
				if err != nil {
					return fmt.Errorf("analyze: %w", err)
				}
				return finishAnalyze(cmd, "kubernetes", analyze.Input{Snapshot: snap}, server, output)
			}
			if configDir == "" {
				return fmt.Errorf("analyze: --config DIR or --kube is required")
			}
			return runAnalyze(cmd, configDir, server, output)
		},
	}
	cmd.Flags().StringVar(&configDir, "config", "", "config directory to analyze")
	k.addFlags(cmd.Flags())
	cmd.MarkFlagsMutuallyExclusive("config", "kube")
	addOutputFlag(cmd, &output, stdFormats...)
	cmd.Flags().StringVar(&server, "server", "", "debug address of a running ward serve (e.g. "+defaultServer+"): analyze its connected proxies (per-proxy codes) instead of the workloads the config declares proxyless")
	cmd.Flags().BoolVar(&listCodes, "codes", false, "list every analyzer code and exit")
	return cmd
}

func runAnalyze(cmd *cobra.Command, dir, server, output string) error {
	res, err := file.Load(dir)
	if err != nil {
		return fmt.Errorf("analyze: load %s: %w", dir, err)
	}
	in := analyze.Input{Snapshot: res.Snapshot, Ignored: res.Ignored}
	for _, rj := range res.Rejected {
		in.Rejected = append(in.Rejected, rj.Err.Error())
	}
	for _, bf := range res.BrokenFiles {
		in.Rejected = append(in.Rejected, "unreadable file "+bf)
	}
	return finishAnalyze(cmd, dir, in, server, output)
}

func finishAnalyze(cmd *cobra.Command, source string, in analyze.Input, server, output string) error {
	if server != "" {
		ps, err := connectedProxies(cmd.Context(), server)
		if err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		in.Proxies = ps
	}
	ds := analyze.Run(in)
	if err := writeDiagnostics(cmd.OutOrStdout(), ds, output); err != nil {
		return err
	}
	for _, d := range ds {
		if d.Severity == analyze.Error {
			return &ExitError{Code: exitAnalyzeErrors, Err: fmt.Errorf("analyze: %s has errors", source)}
		}
	}
	return nil
}

func writeDiagnostics(w io.Writer, ds []analyze.Diagnostic, output string) error {
	if ds == nil {
		ds = []analyze.Diagnostic{}
	}
	return writeData(w, output, ds, func(w io.Writer) error {
		if len(ds) == 0 {
			_, err := fmt.Fprintln(w, "no problems found")
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tCODE\tNAME\tOBJECT\tMESSAGE")
		for _, d := range ds {
			// A multi-line message (an object with several errors, one
			// per line) continues in the MESSAGE column.
			lines := strings.Split(d.Message, "\n")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Severity, d.ID, d.Name, d.Object, lines[0])
			for _, l := range lines[1:] {
				fmt.Fprintf(tw, "\t\t\t\t%s\n", l)
			}
		}
		return tw.Flush()
	})
}

func writeCodes(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tNAME")
	for _, c := range analyze.Codes() {
		fmt.Fprintf(tw, "%s\t%s\n", c.ID, c.Name)
	}
	return tw.Flush()
}

// connectedProxies reads the proxies connected to a running control plane
// from its /debug/connections.
func connectedProxies(ctx context.Context, server string) ([]*mesh.Proxy, error) {
	var conns []xds.Connection
	if err := getJSON(ctx, server, "/debug/connections", &conns); err != nil {
		return nil, err
	}
	out := make([]*mesh.Proxy, 0, len(conns))
	for _, c := range conns {
		out = append(out, &mesh.Proxy{ID: c.Proxy, Type: c.Type, Namespace: c.Namespace, Labels: c.Labels, IPs: c.IPs})
	}
	return out, nil
}
