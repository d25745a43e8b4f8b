package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/audit"
	"github.com/wardmesh/ward/ca"
)

func newCAStatusCmd() *cobra.Command {
	o := caOptions{}
	var server, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the CA's roots, signer, expiry and rotation phase",
		Long: "Show the CA's trust domain, rotation phase, signer and every root in the bundle, read\n" +
			"read-only from a state directory (--state) or from a running ward serve (--server,\n" +
			"its /debug/ca).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := loadCAStatus(cmd, o, server)
			if err != nil {
				return err
			}
			return writeData(cmd.OutOrStdout(), output, st, func(w io.Writer) error { return caStatusTable(w, st) })
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain (with --state)")
	cmd.Flags().StringVar(&server, "server", "", "debug address of a running ward serve, e.g. "+defaultServer+" (instead of --state)")
	cmd.MarkFlagsMutuallyExclusive("state", "server")
	addOutputFlag(cmd, &output, stdFormats...)
	return cmd
}

func loadCAStatus(cmd *cobra.Command, o caOptions, server string) (*ca.Status, error) {
	if server != "" {
		st := &ca.Status{}
		if err := getJSON(cmd.Context(), server, "/debug/ca", st); err != nil {
			return nil, fmt.Errorf("ca status: %w", err)
		}
		return st, nil
	}
	st, err := audit.LoadCA(o.stateDir, o.trustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca status: %w", err)
	}
	return st, nil
}

func caStatusTable(w io.Writer, st *ca.Status) error {
	fmt.Fprintf(w, "Trust domain:  %s\nMode:          %s\nPhase:         %s\n", st.TrustDomain, st.Mode, st.Phase)
	fmt.Fprintf(w, "Signer:        %s (serial %s) expires %s\n", st.Signer.Subject, st.Signer.Serial, ts(st.Signer.NotAfter))
	fmt.Fprintf(w, "Leaf TTL:      default %s, max %s; rotation overlap %s\n", st.DefaultTTL, st.MaxTTL, st.RotationOverlap)
	if p := st.PendingRotation; p != nil {
		fmt.Fprintf(w, "Pending:       rotation request %s of %s not applied yet (applied at the CA's next reconcile or start) %s\n", p.ID, ts(p.Requested), p.Error)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT\tSERIAL\tSIGNING\tNOT AFTER\tSWITCH AT\tDROP AT")
	for _, r := range st.Roots {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\n", r.Subject, r.Serial, r.Signing, ts(r.NotAfter), ts(r.SwitchAt), ts(r.DropAt))
	}
	return tw.Flush()
}

// ts formats a time for tables; the zero time is "-".
func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
