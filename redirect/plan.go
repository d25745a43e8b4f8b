package redirect

import "net/netip"

// Chain names in the table.
const (
	ChainPrerouting  = "prerouting"   // base: nat, hook prerouting, priority dstnat
	ChainOutput      = "output"       // base: nat, hook output, priority dstnat
	ChainInbound     = "inbound"      // which inbound connections go to the proxy
	ChainOutbound    = "outbound"     // which outbound connections go to the proxy
	ChainInRedirect  = "in_redirect"  // redirect to the inbound port
	ChainOutRedirect = "out_redirect" // redirect to the outbound port
)

// Chain is one chain of the table; Hook is "" for a regular chain.
type Chain struct {
	Name  string
	Hook  string // "prerouting" or "output"
	Rules []Rule
}

// Rule matches a TCP connection's first packet on every condition set and
// then takes its Verdict.
type Rule struct {
	TCP     bool         // meta l4proto tcp (implied by DPort)
	OifLo   bool         // leaves through the loopback interface
	Src     netip.Prefix // source address, when valid
	Dst     netip.Prefix // destination address, when valid
	DstNot  bool         // Dst is negated
	DPort   uint16       // destination port, when non-zero
	Owner   *Owner       // the socket's owner
	Verdict Verdict
}

// Owner matches a local socket's uid or gid.
type Owner struct {
	GID bool // match the gid, not the uid
	ID  uint32
	Not bool
}

// Verdict is what a matching rule does: return, jump to Chain, or
// redirect to Port on the local host.
type Verdict struct {
	Jump     string
	Redirect uint16
}

var ret = Verdict{}

// family is the IP version of a rule (0: both).
func (r Rule) family() int {
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if p.IsValid() {
			if p.Addr().Is4() {
				return 4
			}
			return 6
		}
	}
	return 0
}

var (
	loopback4    = netip.MustParsePrefix("127.0.0.1/32")
	loopback6    = netip.MustParsePrefix("::1/128")
	passthrough4 = netip.MustParsePrefix("127.0.0.6/32") // Envoy binds here for inbound passthrough
	passthrough6 = netip.MustParsePrefix("::6/128")
)

// Plan is the table for cfg: Istio's REDIRECT-mode capture.
func Plan(cfg Config) []Chain {
	cfg = cfg.withDefaults()
	return []Chain{
		{Name: ChainPrerouting, Hook: "prerouting", Rules: []Rule{{TCP: true, Verdict: Verdict{Jump: ChainInbound}}}},
		{Name: ChainOutput, Hook: "output", Rules: []Rule{{TCP: true, Verdict: Verdict{Jump: ChainOutbound}}}},
		{Name: ChainInbound, Rules: inbound(cfg)},
		{Name: ChainOutbound, Rules: outbound(cfg)},
		{Name: ChainInRedirect, Rules: []Rule{{TCP: true, Verdict: Verdict{Redirect: cfg.InboundPort}}}},
		{Name: ChainOutRedirect, Rules: []Rule{{TCP: true, Verdict: Verdict{Redirect: cfg.OutboundPort}}}},
	}
}

// inbound: excluded ports return, then all or the included ports go to
// the inbound port. Exclusions win over an explicit include list.
func inbound(cfg Config) []Rule {
	if cfg.IncludeInboundPorts.Empty() {
		return nil
	}
	var rules []Rule
	for _, p := range cfg.excludedInbound() {
		rules = append(rules, Rule{DPort: p, Verdict: ret})
	}
	toProxy := Verdict{Jump: ChainInRedirect}
	if cfg.IncludeInboundPorts.All {
		return append(rules, Rule{Verdict: toProxy})
	}
	for _, p := range cfg.IncludeInboundPorts.Ports {
		rules = append(rules, Rule{DPort: p, Verdict: toProxy})
	}
	return rules
}

// outbound follows istio-iptables' ISTIO_OUTPUT chain, in its order.
func outbound(cfg Config) []Rule {
	var rules []Rule
	for _, p := range cfg.ExcludeOutboundPorts {
		rules = append(rules, Rule{DPort: p, Verdict: ret})
	}
	// Envoy's inbound passthrough connects from 127.0.0.6 / ::6 over lo.
	rules = append(rules, Rule{OifLo: true, Src: passthrough4, Verdict: ret}, Rule{OifLo: true, Src: passthrough6, Verdict: ret})
	for _, o := range []Owner{{ID: cfg.ProxyUID}, {GID: true, ID: cfg.ProxyGID}} {
		rules = append(rules, selfCall(cfg, o)...)
		// The application calling the pod itself (its own IP, over lo)
		// goes straight to it.
		rules = append(rules, Rule{OifLo: true, Owner: &Owner{GID: o.GID, ID: o.ID, Not: true}, Verdict: ret})
		// The proxy's own traffic is never captured (no loops).
		rules = append(rules, Rule{Owner: &Owner{GID: o.GID, ID: o.ID}, Verdict: ret})
	}
	// Localhost is for Envoy-aware apps and container-to-container calls.
	rules = append(rules, Rule{Dst: loopback4, Verdict: ret}, Rule{Dst: loopback6, Verdict: ret})
	for _, p := range cfg.ExcludeOutboundRanges {
		rules = append(rules, Rule{Dst: p, Verdict: ret})
	}
	toProxy := Verdict{Jump: ChainOutRedirect}
	if cfg.IncludeOutboundRanges.All {
		return append(rules, Rule{Verdict: toProxy})
	}
	for _, p := range cfg.IncludeOutboundRanges.Prefixes {
		rules = append(rules, Rule{Dst: p, Verdict: toProxy})
	}
	return rules
}

// selfCall: the proxy calling the pod's own IP (a service VIP that
// resolved to this pod) over lo is sent to the inbound port, so the call
// passes the pod's inbound policy like any other (appN → Envoy → Envoy →
// appN). Ports excluded inbound return instead.
func selfCall(cfg Config, o Owner) []Rule {
	if cfg.IncludeInboundPorts.Empty() {
		return nil
	}
	var rules []Rule
	for _, p := range cfg.excludedInbound() {
		rules = append(rules, Rule{OifLo: true, DPort: p, Owner: &o, Verdict: ret})
	}
	toInbound := Verdict{Jump: ChainInRedirect}
	for _, lo := range []netip.Prefix{loopback4, loopback6} {
		r := Rule{OifLo: true, Dst: lo, DstNot: true, Owner: &o, Verdict: toInbound}
		if cfg.IncludeInboundPorts.All {
			rules = append(rules, r)
			continue
		}
		for _, p := range cfg.IncludeInboundPorts.Ports {
			r.DPort = p
			rules = append(rules, r)
		}
	}
	return rules
}
