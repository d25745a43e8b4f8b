package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/translate"
)

type proxyConfigOptions struct {
	configDir, server, proxyID string
	proxyType, namespace, ip   string
	labels                     []string
	summary                    bool
	output                     string
}

func newProxyConfigCmd() *cobra.Command {
	o := &proxyConfigOptions{}
	cmd := &cobra.Command{
		Use:   "proxy-config",
		Short: "Show the xDS config Ward generates for a proxy",
		Long: `Show the listeners, routes, clusters and endpoints of a proxy, either
computed offline from a config directory for a described proxy (--config,
--type, --namespace, --labels, --ip) with the same translators and security
hooks the server uses, or fetched from a running server's
/debug/config_dump (--server, --proxy).

Without a subcommand it prints every type; the subcommands print one type
as a table (or its Envoy resources with -o json|yaml), and "secrets" shows
the identity a workload holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.OutOrStdout()) },
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.configDir, "config", "", "config directory (offline mode)")
	f.StringVar(&o.server, "server", "", "debug address of a running ward serve, e.g. http://127.0.0.1:15014")
	f.StringVar(&o.proxyID, "proxy", "", "proxy (node) id, with --server")
	f.StringVar(&o.proxyType, "type", "sidecar", "proxy type: sidecar, router or grpc (offline)")
	f.StringVar(&o.namespace, "namespace", "default", "proxy namespace (offline)")
	f.StringVar(&o.ip, "ip", "", "proxy IP (offline)")
	f.StringSliceVar(&o.labels, "labels", nil, "proxy labels k=v (offline)")
	cmd.Flags().BoolVar(&o.summary, "summary", false, "print resource names only")
	_ = cmd.Flags().MarkDeprecated("summary", "use -o table (the default)")
	addOutputFlag(cmd, &o.output, stdFormats...)
	_ = cmd.RegisterFlagCompletionFunc("proxy", completeProxyIDs("server"))
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"sidecar", "router", "grpc"}, cobra.ShellCompDirectiveNoFileComp))
	for _, k := range resourceKinds {
		cmd.AddCommand(newProxyConfigKindCmd(o, k))
	}
	cmd.AddCommand(newProxyConfigSecretsCmd())
	cmd.AddCommand(newProxyConfigNodeCmds(o)...)
	return cmd
}

func (o *proxyConfigOptions) run(w io.Writer) error {
	if o.summary || o.output == "" {
		o.output = outTable
	}
	switch {
	case o.server != "" && o.proxyID != "":
		return o.fetch(w)
	case o.configDir != "":
		return o.generate(w)
	}
	return errors.New("proxy-config: give --config DIR (offline) or --server URL --proxy ID")
}

func (o *proxyConfigOptions) fetch(w io.Writer) error {
	body, err := o.fetchDump()
	if err != nil {
		return err
	}
	return writeDump(w, o.output, body)
}

// fetchDump returns the /debug/config_dump body (JSON) of --proxy.
func (o *proxyConfigOptions) fetchDump() ([]byte, error) {
	body, err := fetchDebug(o.server, "/debug/config_dump?proxy="+url.QueryEscape(o.proxyID), "config dump of "+o.proxyID)
	if err != nil {
		return nil, fmt.Errorf("proxy-config: %w", err)
	}
	return body, nil
}

// writeDump prints a /debug/config_dump body (JSON) in format.
func writeDump(w io.Writer, format string, body []byte) error {
	switch format {
	case outJSON:
		_, err := w.Write(body)
		return err
	case outYAML:
		y, err := yaml.JSONToYAML(body)
		if err != nil {
			return fmt.Errorf("proxy-config: config dump to yaml: %w", err)
		}
		_, err = w.Write(y)
		return err
	}
	var d dumpSummary
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("proxy-config: decode config dump: %w", err)
	}
	return d.print(w)
}

// dumpSummary is the part of a config dump the table shows.
type dumpSummary struct {
	Listeners []struct {
		Name string `json:"name"`
	} `json:"listeners"`
	Routes []struct {
		Name         string            `json:"name"`
		VirtualHosts []json.RawMessage `json:"virtual_hosts"`
	} `json:"routes"`
	Clusters []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"clusters"`
	Endpoints []struct {
		ClusterName string `json:"cluster_name"`
		Endpoints   []struct {
			LbEndpoints []json.RawMessage `json:"lb_endpoints"`
		} `json:"endpoints"`
	} `json:"endpoints"`
}

func (d dumpSummary) print(w io.Writer) error {
	for _, l := range d.Listeners {
		fmt.Fprintf(w, "listener  %s\n", l.Name)
	}
	for _, r := range d.Routes {
		fmt.Fprintf(w, "route     %s (%d virtual hosts)\n", r.Name, len(r.VirtualHosts))
	}
	for _, c := range d.Clusters {
		t := c.Type
		if t == "" {
			t = "STATIC" // protojson omits the enum's zero value
		}
		fmt.Fprintf(w, "cluster   %s %s\n", c.Name, t)
	}
	for _, e := range d.Endpoints {
		n := 0
		for _, l := range e.Endpoints {
			n += len(l.LbEndpoints)
		}
		fmt.Fprintf(w, "endpoints %s (%d)\n", e.ClusterName, n)
	}
	return nil
}

func (o *proxyConfigOptions) generate(w io.Writer) error {
	out, err := o.offline()
	if err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		fmt.Fprintf(w, "# generated config does not validate: %v\n", err)
	}
	switch o.output {
	case outTable:
		return printSummary(w, out)
	case outYAML:
		var b bytes.Buffer
		if err := printJSON(&b, out); err != nil {
			return err
		}
		return writeDump(w, outYAML, b.Bytes())
	}
	return printJSON(w, out)
}

// offline loads --config and generates the described proxy's resources
// with the server's translators and security hooks (mTLS, JWT, RBAC).
func (o *proxyConfigOptions) offline() (*translate.Resources, error) {
	res, err := file.Load(o.configDir)
	if err != nil {
		return nil, fmt.Errorf("proxy-config: load %s: %w", o.configDir, err)
	}
	p, err := o.offlineProxy()
	if err != nil {
		return nil, err
	}
	return generateProxy(res.Snapshot, p, hooks.Config{}), nil
}

// generateProxy computes p's resources from snap with the translators and
// the security hooks ward serve uses, configured by hc as serve would
// configure them (hc.ExtAuthz: Envoy proxies enforce through ext_authz).
// No JWKS are fetched: remote issuers' providers carry no keys.
func generateProxy(snap *mesh.Snapshot, p *mesh.Proxy, hc hooks.Config) *translate.Resources {
	ix := translate.NewIndex(snap)
	return translate.Generate(ix, ix.Scope(p), hooks.New(hc))
}

// offlineProxy is the proxy described by --type, --namespace, --ip and
// --labels.
func (o *proxyConfigOptions) offlineProxy() (*mesh.Proxy, error) {
	p := &mesh.Proxy{ID: "offline", Type: mesh.ProxyType(o.proxyType), Namespace: o.namespace, Labels: mesh.Labels{}}
	switch p.Type {
	case mesh.ProxySidecar, mesh.ProxyRouter, mesh.ProxyGRPC:
	default:
		return nil, fmt.Errorf("proxy-config: --type %q: must be sidecar, router or grpc", o.proxyType)
	}
	if o.ip != "" {
		p.IPs = []string{o.ip}
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("proxy-config: --labels %q: want key=value", l)
		}
		p.Labels[k] = v
	}
	return p, nil
}

// resources returns the proxy's resources from the server (--server,
// --proxy) or generated offline (--config).
func (o *proxyConfigOptions) resources() (*translate.Resources, error) {
	switch {
	case o.server != "" && o.proxyID != "":
		body, err := o.fetchDump()
		if err != nil {
			return nil, err
		}
		return decodeDump(body)
	case o.configDir != "":
		return o.offline()
	}
	return nil, errors.New("proxy-config: give --config DIR (offline) or --server URL --proxy ID")
}

// decodeDump parses a /debug/config_dump body back into Envoy resources.
func decodeDump(body []byte) (*translate.Resources, error) {
	var d struct {
		Listeners, Routes, Clusters, Endpoints []json.RawMessage
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("proxy-config: decode config dump: %w", err)
	}
	r := &translate.Resources{}
	var err error
	if r.Listeners, err = decodeList[listener.Listener](d.Listeners); err != nil {
		return nil, err
	}
	if r.Routes, err = decodeList[route.RouteConfiguration](d.Routes); err != nil {
		return nil, err
	}
	if r.Clusters, err = decodeList[cluster.Cluster](d.Clusters); err != nil {
		return nil, err
	}
	if r.Endpoints, err = decodeList[endpoint.ClusterLoadAssignment](d.Endpoints); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeList unmarshals protojson resources (Any payloads resolve from
// the types linked into ward, which generated them).
func decodeList[T any, P interface {
	*T
	proto.Message
}](raw []json.RawMessage) ([]*T, error) {
	out := make([]*T, 0, len(raw))
	for i, b := range raw {
		m := P(new(T))
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("proxy-config: decode config dump %T %d: %w", m, i, err)
		}
		out = append(out, (*T)(m))
	}
	return out, nil
}

func printSummary(w io.Writer, r *translate.Resources) error {
	for _, l := range r.Listeners {
		fmt.Fprintf(w, "listener  %s\n", l.GetName())
	}
	for _, rc := range r.Routes {
		fmt.Fprintf(w, "route     %s (%d virtual hosts)\n", rc.GetName(), len(rc.GetVirtualHosts()))
	}
	for _, c := range r.Clusters {
		fmt.Fprintf(w, "cluster   %s %s\n", c.GetName(), c.GetType())
	}
	for _, e := range r.Endpoints {
		n := 0
		for _, l := range e.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
		fmt.Fprintf(w, "endpoints %s (%d)\n", e.GetClusterName(), n)
	}
	return nil
}

func printJSON(w io.Writer, r *translate.Resources) error {
	raw := func(ms []proto.Message) []json.RawMessage {
		out := make([]json.RawMessage, 0, len(ms))
		for _, m := range ms {
			b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
			out = append(out, b)
		}
		return out
	}
	doc := map[string][]json.RawMessage{
		"listeners": raw(msgs(r.Listeners)), "routes": raw(msgs(r.Routes)),
		"clusters": raw(msgs(r.Clusters)), "endpoints": raw(msgs(r.Endpoints)),
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func msgs[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}
