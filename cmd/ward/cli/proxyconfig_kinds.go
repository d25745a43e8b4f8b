package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/xds/translate"
)

// resourceKind is one `ward proxy-config <kind>` subcommand: how to pick
// its resources (filtered by --name) and print them as a table.
type resourceKind struct {
	use, short, nameHelp string
	// pick returns the resources of this kind named name ("" = all).
	pick func(r *translate.Resources, name string) []proto.Message
	// table prints the picked resources.
	table func(w io.Writer, ms []proto.Message) error
}

var resourceKinds = []resourceKind{
	{use: "listeners", short: "Show a proxy's listeners: address, one row per filter chain with its match, TLS and destination",
		nameHelp: "only the listener with this name", pick: pickListeners, table: listenerTable},
	{use: "routes", short: "Show a proxy's route configurations: virtual hosts, domains, matches and destination clusters with weights",
		nameHelp: "only the route configuration with this name", pick: pickRoutes, table: routeTable},
	{use: "clusters", short: "Show a proxy's clusters: type, subset, TLS/mTLS and the SANs it verifies",
		nameHelp: "only the cluster with this name", pick: pickClusters, table: clusterTable},
	{use: "endpoints", short: "Show a proxy's endpoints: cluster, address, health, locality, priority and weight",
		nameHelp: "only the endpoints of the cluster with this name", pick: pickEndpoints, table: endpointTable},
}

// kindOptions are a subcommand's own flags; the source flags are the
// parent's persistent ones.
type kindOptions struct {
	parent *proxyConfigOptions
	kind   resourceKind
	name   string
	output string
}

func newProxyConfigKindCmd(parent *proxyConfigOptions, k resourceKind) *cobra.Command {
	o := &kindOptions{parent: parent, kind: k}
	cmd := &cobra.Command{
		Use:   k.use,
		Short: k.short,
		Long: k.short + ".\n\nThe source is a running server's config dump (--server, --proxy) or the\n" +
			"config generated offline for a described proxy (--config, --type, --namespace,\n" +
			"--labels, --ip). -o json|yaml prints the Envoy resources themselves.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.OutOrStdout()) },
	}
	cmd.Flags().StringVar(&o.name, "name", "", k.nameHelp)
	addOutputFlag(cmd, &o.output, stdFormats...)
	return cmd
}

func (o *kindOptions) run(w io.Writer) error {
	r, err := o.parent.resources()
	if err != nil {
		return err
	}
	ms := o.kind.pick(r, o.name)
	if o.name != "" && len(ms) == 0 {
		return fmt.Errorf("proxy-config %s: nothing named %q (run without --name to list them)", o.kind.use, o.name)
	}
	return writeData(w, o.output, rawMessages(ms), func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if err := o.kind.table(tw, ms); err != nil {
			return err
		}
		return tw.Flush()
	})
}

// rawMessages renders resources as protojson (Envoy's field names), so
// -o json|yaml print them exactly as /debug/config_dump does.
func rawMessages(ms []proto.Message) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		out = append(out, b)
	}
	return out
}

// pick keeps the resources whose name is name ("" keeps all).
func pick[T proto.Message](in []T, nameOf func(T) string, name string) []proto.Message {
	out := make([]proto.Message, 0, len(in))
	for _, m := range in {
		if name == "" || nameOf(m) == name {
			out = append(out, m)
		}
	}
	return out
}
