package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/xds/ambient"
)

// nodeConfigOptions are the flags of proxy-config workloads|policies for
// a node proxy.
type nodeConfigOptions struct {
	parent *proxyConfigOptions
	output string
	now    func() time.Time
}

func newProxyConfigNodeCmds(parent *proxyConfigOptions) []*cobra.Command {
	mk := func(use, short string, table func(io.Writer, ambient.NodeConn) error, data func(ambient.NodeConn) any) *cobra.Command {
		o := &nodeConfigOptions{parent: parent, now: time.Now}
		cmd := &cobra.Command{
			Use:   use + " NODE_PROXY",
			Short: short,
			Long: short + ".\n\nNODE_PROXY is node~<node> as `ward proxy-status` lists it (or --proxy); the\n" +
				"source is a running server's /debug/nodez (--server).",
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := o.parent.node(cmd.Context(), args)
				if err != nil {
					return err
				}
				return writeData(cmd.OutOrStdout(), o.output, data(n), func(w io.Writer) error { return table(w, n) })
			},
		}
		addOutputFlag(cmd, &o.output, stdFormats...)
		return cmd
	}
	return []*cobra.Command{
		mk("workloads", "Show a node proxy's workloads: address, SPIFFE ID, effective mTLS mode and the AuthorizationPolicies that apply",
			workloadTable, func(n ambient.NodeConn) any { return n.Workloads }),
		mk("policies", "Show the PeerAuthentications and AuthorizationPolicies a node proxy is sent, with their versions and whether it ACKed them",
			policyTable, func(n ambient.NodeConn) any { return n.Policies }),
	}
}

// node finds the node proxy named by args[0] or --proxy on --server.
func (o *proxyConfigOptions) node(ctx context.Context, args []string) (ambient.NodeConn, error) {
	id := o.proxyID
	if len(args) == 1 {
		id = args[0]
	}
	if o.server == "" || id == "" {
		return ambient.NodeConn{}, fmt.Errorf("proxy-config: give --server URL and a node proxy (node~<node>)")
	}
	return findNode(ctx, o.server, id)
}

func findNode(ctx context.Context, server, id string) (ambient.NodeConn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	nodes, err := fetchNodes(ctx, server)
	if err != nil {
		return ambient.NodeConn{}, fmt.Errorf("proxy-config: %w", err)
	}
	name := strings.TrimPrefix(id, nodeProxyPrefix)
	var ids []string
	for _, n := range nodes {
		if n.Node == name {
			return n, nil
		}
		ids = append(ids, nodeProxyPrefix+n.Node)
	}
	if close := closeMatches(id, ids, 5); len(close) > 0 {
		return ambient.NodeConn{}, fmt.Errorf("proxy-config: unknown node proxy %q; did you mean:\n  %s", id, strings.Join(close, "\n  "))
	}
	return ambient.NodeConn{}, fmt.Errorf("proxy-config: unknown node proxy %q (%d connected; run `ward proxy-status` to list them)", id, len(nodes))
}

func workloadTable(w io.Writer, n ambient.NodeConn) error {
	if len(n.Workloads) == 0 {
		_, err := fmt.Fprintf(w, "no ambient workloads on node %s\n", n.Node)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tADDRESS\tSPIFFE ID\tMTLS\tPOLICIES")
	for _, wl := range n.Workloads {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wl.Namespace, wl.Name, wl.Address, wl.SPIFFEID, wl.MTLSMode, dash(strings.Join(wl.Policies, ",")))
	}
	return tw.Flush()
}

func policyTable(w io.Writer, n ambient.NodeConn) error {
	if len(n.Policies) == 0 {
		_, err := fmt.Fprintf(w, "no policies sent to node %s\n", n.Node)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tACTION\tVERSION\tACKED")
	for _, p := range n.Policies {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\n", p.Kind, p.Namespace, p.Name, dash(p.Action), p.Version, p.Acked)
	}
	return tw.Flush()
}

// nodeSecret is one workload certificate of a node proxy, from the CA's
// issuance records (the node proxy holds the key; the CA recorded which
// node asked for it).
type nodeSecret struct {
	Workloads []string  `json:"workloads"` // namespace/name on the node with this identity
	SPIFFEID  string    `json:"spiffeId"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	ExpiresIn string    `json:"expiresIn"`
	issuedAt  time.Time
}

// nodeSecrets lists, per identity of the node's workloads, the newest
// unexpired certificate the CA issued to that node.
func nodeSecrets(ctx context.Context, server, id string, now time.Time) ([]nodeSecret, error) {
	n, err := findNode(ctx, server, id)
	if err != nil {
		return nil, err
	}
	var rep ca.IssuedReport
	if err := getJSON(ctx, server, "/debug/ca/issued", &rep); err != nil {
		return nil, fmt.Errorf("proxy-config secrets: %w", err)
	}
	byID := map[string]*nodeSecret{}
	for _, wl := range n.Workloads {
		s := byID[wl.SPIFFEID]
		if s == nil {
			s = &nodeSecret{SPIFFEID: wl.SPIFFEID}
			byID[wl.SPIFFEID] = s
		}
		s.Workloads = append(s.Workloads, wl.Namespace+"/"+wl.Name)
	}
	for _, c := range rep.Certificates {
		s := byID[c.SPIFFEID]
		if s == nil || c.Node != n.Node || (s.Serial != "" && !c.IssuedAt.After(s.issuedAt)) {
			continue // not this node's, or an older certificate
		}
		s.Serial, s.NotBefore, s.NotAfter, s.issuedAt = c.Serial, c.NotBefore, c.NotAfter, c.IssuedAt
		s.ExpiresIn = c.NotAfter.Sub(now).Round(time.Second).String()
	}
	out := make([]nodeSecret, 0, len(byID))
	for _, s := range byID {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b nodeSecret) int { return strings.Compare(a.SPIFFEID, b.SPIFFEID) })
	return out, nil
}

func nodeSecretTable(w io.Writer, ss []nodeSecret) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPIFFE ID\tWORKLOADS\tSERIAL\tNOT AFTER\tEXPIRES IN")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.SPIFFEID, strings.Join(s.Workloads, ","), dash(s.Serial), notAfter(s.NotAfter), dash(s.ExpiresIn))
	}
	return tw.Flush()
}

func notAfter(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
