package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wardmesh/ward/redirect"
)

// redirectFlags are `ward redirect`'s flags, in the spelling of Istio's
// traffic.sidecar.istio.io annotations that the injector turns into them.
type redirectFlags struct {
	includeInbound, excludeInbound, excludeOutboundPorts string
	includeOutbound, excludeOutbound                     string
	cfg                                                  redirect.Config
	dryRun, cleanup                                      bool
}

func (f *redirectFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.includeInbound, "include-inbound-ports", "*", `inbound ports captured: "*" all, "" none, or a list (includeInboundPorts)`)
	fs.StringVar(&f.excludeInbound, "exclude-inbound-ports", "", "inbound ports never captured, besides 15008,15020,15021,15090 (excludeInboundPorts)")
	fs.StringVar(&f.excludeOutboundPorts, "exclude-outbound-ports", "", "destination ports never captured outbound (excludeOutboundPorts)")
	fs.StringVar(&f.includeOutbound, "include-outbound-ip-ranges", "*", `destinations captured outbound: "*" all, "" none, or CIDRs (includeOutboundIPRanges)`)
	fs.StringVar(&f.excludeOutbound, "exclude-outbound-ip-ranges", "", "destination CIDRs never captured outbound (excludeOutboundIPRanges)")
	fs.Uint16Var(&f.cfg.InboundPort, "inbound-port", redirect.DefaultInboundPort, "the proxy's inbound capture port")
	fs.Uint16Var(&f.cfg.OutboundPort, "outbound-port", redirect.DefaultOutboundPort, "the proxy's outbound capture port")
	fs.Uint32Var(&f.cfg.ProxyUID, "proxy-uid", redirect.DefaultProxyID, "uid whose outbound traffic is not captured (the proxy's)")
	fs.Uint32Var(&f.cfg.ProxyGID, "proxy-gid", redirect.DefaultProxyID, "gid whose outbound traffic is not captured")
	fs.StringVar(&f.cfg.Table, "table", redirect.DefaultTable, "nf_tables table (family inet) that holds the rules")
	fs.StringVar(&f.cfg.NetNS, "netns", "", "network namespace file to act in (default: this process's)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the rules in nft syntax and change nothing")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the rules (the table) instead")
}

// config parses the list flags; an error names the flag.
func (f *redirectFlags) config() (redirect.Config, error) {
	cfg := f.cfg
	var err error
	parse := func(name string, fn func() error) {
		if err == nil {
			if e := fn(); e != nil {
				err = fmt.Errorf("redirect: --%s: %w", name, e)
			}
		}
	}
	parse("include-inbound-ports", func() (e error) { cfg.IncludeInboundPorts, e = redirect.ParsePortSet(f.includeInbound); return })
	parse("exclude-inbound-ports", func() (e error) { cfg.ExcludeInboundPorts, e = redirect.ParsePorts(f.excludeInbound); return })
	parse("exclude-outbound-ports", func() (e error) { cfg.ExcludeOutboundPorts, e = redirect.ParsePorts(f.excludeOutboundPorts); return })
	parse("include-outbound-ip-ranges", func() (e error) { cfg.IncludeOutboundRanges, e = redirect.ParseRangeSet(f.includeOutbound); return })
	parse("exclude-outbound-ip-ranges", func() (e error) { cfg.ExcludeOutboundRanges, e = redirect.ParsePrefixes(f.excludeOutbound); return })
	return cfg, err
}

func newRedirectCmd() *cobra.Command {
	var f redirectFlags
	cmd := &cobra.Command{
		Use:   "redirect",
		Short: "Capture this network namespace's TCP traffic for the sidecar proxy (nf_tables)",
		Long: "Install the sidecar's traffic capture with nf_tables, from Go (no shell, no iptables):\n" +
			"inbound TCP to --inbound-port (15006), outbound TCP to --outbound-port (15001), except\n" +
			"the proxy's own traffic (uid/gid 1337), localhost and what the flags exclude — Istio's\n" +
			"istio-iptables semantics, for IPv4 and IPv6, in one inet table. Re-running replaces\n" +
			"the table atomically; --cleanup deletes it; --dry-run prints it. The injected\n" +
			"ward-init container runs this with flags from the pod's traffic.sidecar.istio.io\n" +
			"annotations. Needs CAP_NET_ADMIN.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			return runRedirect(cmd.OutOrStdout(), cfg, f.dryRun, f.cleanup)
		},
	}
	f.add(cmd.Flags())
	cmd.MarkFlagsMutuallyExclusive("dry-run", "cleanup")
	return cmd
}

func runRedirect(w io.Writer, cfg redirect.Config, dryRun, cleanup bool) error {
	switch {
	case dryRun:
		_, err := io.WriteString(w, redirect.Render(cfg))
		return err
	case cleanup:
		if err := redirect.Remove(cfg); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "removed nf_tables table inet %s\n", cfg.Table)
		return err
	}
	if err := redirect.Install(cfg); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "installed nf_tables table inet %s:\n%s", cfg.Table, redirect.Render(cfg))
	return err
}
