package simulate

import (
	"net/netip"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Listener filter names that change what the chain match sees.
const (
	tlsInspector  = "envoy.filters.listener.tls_inspector"
	httpInspector = "envoy.filters.listener.http_inspector"
)

// conn is what filter-chain matching knows about a connection.
type conn struct {
	dstPort   uint32
	dstIP     netip.Addr
	srcIP     netip.Addr
	srcPort   uint32
	sni       string
	transport string
	alpn      []string
}

// inspect runs the listener filters active on the connection's port:
// tls_inspector reveals "tls", SNI and ALPN; http_inspector reveals
// plaintext HTTP as ALPN http/1.1 or h2c. Otherwise Envoy sees
// "raw_buffer".
func inspect(l *listener.Listener, req *Request) conn {
	c := conn{dstPort: req.DstPort, srcPort: req.SrcPort, transport: "raw_buffer"}
	c.dstIP, _ = netip.ParseAddr(req.DstIP)
	c.srcIP, _ = netip.ParseAddr(req.SrcIP)
	for _, f := range l.GetListenerFilters() {
		if predicateDisables(f.GetFilterDisabled(), req.DstPort) {
			continue
		}
		switch listenerFilterKind(f) {
		case tlsInspector:
			if req.TLS {
				c.transport, c.sni, c.alpn = "tls", req.SNI, req.ALPN
			}
		case httpInspector:
			if !req.TLS && req.Protocol != TCP {
				c.alpn = []string{plaintextALPN(req.Protocol)}
			}
		}
	}
	return c
}

func plaintextALPN(p Protocol) string {
	if p == HTTP1 {
		return "http/1.1"
	}
	return "h2c"
}

func listenerFilterKind(f *listener.ListenerFilter) string {
	switch {
	case f.GetName() == tlsInspector || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), ".TlsInspector"):
		return tlsInspector
	case f.GetName() == httpInspector || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), ".HttpInspector"):
		return httpInspector
	}
	return f.GetName()
}

// predicateDisables evaluates a listener filter's filter_disabled.
func predicateDisables(p *listener.ListenerFilterChainMatchPredicate, port uint32) bool {
	switch r := p.GetRule().(type) {
	case *listener.ListenerFilterChainMatchPredicate_AnyMatch:
		return r.AnyMatch
	case *listener.ListenerFilterChainMatchPredicate_NotMatch:
		return !predicateDisables(r.NotMatch, port)
	case *listener.ListenerFilterChainMatchPredicate_OrMatch:
		return slices.ContainsFunc(r.OrMatch.GetRules(), func(q *listener.ListenerFilterChainMatchPredicate) bool { return predicateDisables(q, port) })
	case *listener.ListenerFilterChainMatchPredicate_AndMatch:
		return !slices.ContainsFunc(r.AndMatch.GetRules(), func(q *listener.ListenerFilterChainMatchPredicate) bool { return !predicateDisables(q, port) })
	case *listener.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int64(port) >= int64(r.DestinationPortRange.GetStart()) && int64(port) < int64(r.DestinationPortRange.GetEnd())
	}
	return false
}

// criterion scores one FilterChainMatch field for a connection: ok false
// excludes the chain; among the rest the highest score wins; a chain
// without the criterion scores 0 (the fallback).
type criterion struct {
	name  string
	score func(m *listener.FilterChainMatch, c conn) (int, bool)
}

// criteria are Envoy's matching steps, in order.
var criteria = []criterion{
	{"destination_port", scorePort},
	{"prefix_ranges", func(m *listener.FilterChainMatch, c conn) (int, bool) { return scoreCIDR(m.GetPrefixRanges(), c.dstIP) }},
	{"server_names", scoreServerNames},
	{"transport_protocol", scoreTransport},
	{"application_protocols", nil}, // see pruneALPN: the client's order decides
	{"direct_source_prefix_ranges", func(m *listener.FilterChainMatch, c conn) (int, bool) {
		return scoreCIDR(m.GetDirectSourcePrefixRanges(), c.srcIP)
	}},
	{"source_type", scoreSourceType},
	{"source_prefix_ranges", func(m *listener.FilterChainMatch, c conn) (int, bool) {
		return scoreCIDR(m.GetSourcePrefixRanges(), c.srcIP)
	}},
	{"source_ports", scoreSourcePort},
}

// selectChain picks the filter chain as Envoy does: criterion by
// criterion keep the most specific matches, never backtracking; nothing
// left → default_filter_chain, else the connection is closed.
func (s *Simulator) selectChain(l *listener.Listener, req *Request, res *Result) *listener.FilterChain {
	c := inspect(l, req)
	res.tracef("chain match sees port=%d ip=%s sni=%q transport=%s alpn=%v src=%s:%d", c.dstPort, c.dstIP, c.sni, c.transport, c.alpn, c.srcIP, c.srcPort)
	cands := l.GetFilterChains()
	for _, cr := range criteria {
		if cr.score == nil {
			cands = pruneALPN(cands, c.alpn)
		} else {
			cands = prune(cands, c, cr.score)
		}
		if len(cands) == 0 {
			res.tracef("no chain left after %s", cr.name)
			break
		}
	}
	fc := pickChain(l, cands, res)
	if fc == nil {
		res.finish(NoChain, 0, "no_filter_chain")
		return nil
	}
	res.Chain, res.FilterChain = fc.GetName(), fc
	return fc
}

func pickChain(l *listener.Listener, cands []*listener.FilterChain, res *Result) *listener.FilterChain {
	switch {
	case len(cands) > 1:
		res.tracef("ambiguous: %d chains match (Envoy rejects such listeners); taking %s", len(cands), cands[0].GetName())
	case len(cands) == 0 && l.GetDefaultFilterChain() != nil:
		res.tracef("no chain matched: default_filter_chain")
		return l.GetDefaultFilterChain()
	case len(cands) == 0:
		return nil
	}
	res.tracef("filter chain %s", cands[0].GetName())
	return cands[0]
}

func prune(in []*listener.FilterChain, c conn, score func(*listener.FilterChainMatch, conn) (int, bool)) []*listener.FilterChain {
	best := -1
	var out []*listener.FilterChain
	for _, fc := range in {
		n, ok := score(fc.GetFilterChainMatch(), c)
		switch {
		case !ok || n < best:
		case n > best:
			best, out = n, []*listener.FilterChain{fc}
		default:
			out = append(out, fc)
		}
	}
	return out
}

// pruneALPN: the first of the client's protocols that some chain lists
// selects those chains; otherwise the chains without the criterion.
func pruneALPN(in []*listener.FilterChain, alpn []string) []*listener.FilterChain {
	for _, p := range alpn {
		var out []*listener.FilterChain
		for _, fc := range in {
			if slices.Contains(fc.GetFilterChainMatch().GetApplicationProtocols(), p) {
				out = append(out, fc)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	var out []*listener.FilterChain
	for _, fc := range in {
		if len(fc.GetFilterChainMatch().GetApplicationProtocols()) == 0 {
			out = append(out, fc)
		}
	}
	return out
}

func scorePort(m *listener.FilterChainMatch, c conn) (int, bool) {
	if m.GetDestinationPort() == nil {
		return 0, true
	}
	return 1, m.GetDestinationPort().GetValue() == c.dstPort
}

// scoreCIDR: the longest matching prefix; no ranges is the fallback.
func scoreCIDR(ranges []*core.CidrRange, ip netip.Addr) (int, bool) {
	if len(ranges) == 0 {
		return 0, true
	}
	best, ok := -1, false
	for _, r := range ranges {
		if cidrContains(r, ip) {
			n, _ := cidrBits(r)
			best, ok = max(best, n+1), true
		}
	}
	return best, ok
}

// scoreServerNames: exact beats the longest wildcard "*.x" beats none.
func scoreServerNames(m *listener.FilterChainMatch, c conn) (int, bool) {
	if len(m.GetServerNames()) == 0 {
		return 0, true
	}
	best, ok := -1, false
	sni := strings.ToLower(c.sni)
	for _, n := range m.GetServerNames() {
		n = strings.ToLower(n)
		switch {
		case n == sni && sni != "":
			return 1 << 20, true
		case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(sni) > len(n)-1:
			best, ok = max(best, len(n)), true
		}
	}
	return best, ok
}

func scoreTransport(m *listener.FilterChainMatch, c conn) (int, bool) {
	if m.GetTransportProtocol() == "" {
		return 0, true
	}
	return 1, m.GetTransportProtocol() == c.transport
}

// scoreSourceType: SAME_IP_OR_LOOPBACK is a loopback source or one equal
// to the destination; EXTERNAL the others; ANY the fallback.
func scoreSourceType(m *listener.FilterChainMatch, c conn) (int, bool) {
	local := c.srcIP.IsLoopback() || (c.srcIP.IsValid() && c.srcIP == c.dstIP)
	switch m.GetSourceType() {
	case listener.FilterChainMatch_SAME_IP_OR_LOOPBACK:
		return 1, local
	case listener.FilterChainMatch_EXTERNAL:
		return 1, !local
	}
	return 0, true
}

func scoreSourcePort(m *listener.FilterChainMatch, c conn) (int, bool) {
	if len(m.GetSourcePorts()) == 0 {
		return 0, true
	}
	return 1, slices.Contains(m.GetSourcePorts(), c.srcPort)
}
