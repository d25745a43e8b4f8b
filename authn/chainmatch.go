package authn

import (
	"fmt"
	"slices"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Conn describes an incoming connection for MatchFilterChain: what the
// client sends, before any listener filter has looked at it.
type Conn struct {
	Port uint32
	// TLS is true when the client starts a TLS handshake.
	TLS bool
	// ALPN and SNI are offered in the TLS ClientHello.
	ALPN []string
	SNI  string
	// HTTP is the plaintext protocol http_inspector would detect
	// ("http/1.1", "http/1.0", "h2c"); empty for opaque TCP.
	HTTP string
}

// MatchFilterChain answers "which filter chain does Envoy pick for this
// connection on listener l?" the way Envoy does: the active listener
// filters decide what is known (transport protocol, ALPN, SNI), then the
// chains are pruned criterion by criterion — destination port, server
// name, transport protocol, application protocol — keeping at each step
// the most specific matches, never backtracking. It returns the chosen
// chain, or the default chain, or nil when the connection is closed. An
// error means the chains are ambiguous (Envoy would reject them).
// `ward proxy-config` and the simulation tests use it.
func MatchFilterChain(l *listener.Listener, c Conn) (*listener.FilterChain, error) {
	tp, alpn, sni := inspect(l.GetListenerFilters(), c)
	cands := l.GetFilterChains()
	cands = prune(cands, func(m *listener.FilterChainMatch) (bool, bool) {
		if m.GetDestinationPort() == nil {
			return false, true
		}
		return m.GetDestinationPort().GetValue() == c.Port, false
	})
	cands = prune(cands, func(m *listener.FilterChainMatch) (bool, bool) {
		if len(m.GetServerNames()) == 0 {
			return false, true
		}
		return serverNameMatch(m.GetServerNames(), sni), false
	})
	cands = prune(cands, func(m *listener.FilterChainMatch) (bool, bool) {
		if m.GetTransportProtocol() == "" {
			return false, true
		}
		return m.GetTransportProtocol() == tp, false
	})
	cands = prune(cands, func(m *listener.FilterChainMatch) (bool, bool) {
		if len(m.GetApplicationProtocols()) == 0 {
			return false, true
		}
		for _, a := range alpn {
			if slices.Contains(m.GetApplicationProtocols(), a) {
				return true, false
			}
		}
		return false, false
	})
	switch len(cands) {
	case 0:
		return l.GetDefaultFilterChain(), nil
	case 1:
		return cands[0], nil
	}
	names := make([]string, len(cands))
	for i, fc := range cands {
		names[i] = fc.GetName()
	}
	return nil, fmt.Errorf("match filter chain on listener %q: %d chains match the same connection: %s", l.GetName(), len(cands), strings.Join(names, ", "))
}

// prune keeps the chains that match specifically if any do, else those
// that do not constrain this criterion (wildcards).
func prune(in []*listener.FilterChain, test func(*listener.FilterChainMatch) (match, wildcard bool)) []*listener.FilterChain {
	var specific, wild []*listener.FilterChain
	for _, fc := range in {
		match, wildcard := test(fc.GetFilterChainMatch())
		switch {
		case wildcard:
			wild = append(wild, fc)
		case match:
			specific = append(specific, fc)
		}
	}
	if len(specific) > 0 {
		return specific
	}
	return wild
}

func serverNameMatch(names []string, sni string) bool {
	for _, n := range names {
		if n == sni || (strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:])) {
			return true
		}
	}
	return false
}

// inspect runs the listener filters that are active for the connection's
// port: tls_inspector reveals "tls", ALPN and SNI; http_inspector reveals
// the plaintext HTTP protocol. Without them Envoy sees "raw_buffer".
func inspect(filters []*listener.ListenerFilter, c Conn) (tp string, alpn []string, sni string) {
	tp = TransportRaw
	for _, f := range filters {
		if disabled(f.GetFilterDisabled(), c.Port) {
			continue
		}
		switch f.GetName() {
		case TLSInspectorName:
			if c.TLS {
				tp, alpn, sni = TransportTLS, c.ALPN, c.SNI
			}
		case HTTPInspectorName:
			if !c.TLS && c.HTTP != "" {
				alpn = []string{c.HTTP}
			}
		}
	}
	return tp, alpn, sni
}

func disabled(p *listener.ListenerFilterChainMatchPredicate, port uint32) bool {
	if p == nil {
		return false
	}
	switch r := p.GetRule().(type) {
	case *listener.ListenerFilterChainMatchPredicate_AnyMatch:
		return r.AnyMatch
	case *listener.ListenerFilterChainMatchPredicate_NotMatch:
		return !disabled(r.NotMatch, port)
	case *listener.ListenerFilterChainMatchPredicate_OrMatch:
		return slices.ContainsFunc(r.OrMatch.GetRules(), func(q *listener.ListenerFilterChainMatchPredicate) bool { return disabled(q, port) })
	case *listener.ListenerFilterChainMatchPredicate_AndMatch:
		for _, q := range r.AndMatch.GetRules() {
			if !disabled(q, port) {
				return false
			}
		}
		return true
	case *listener.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int64(port) >= int64(r.DestinationPortRange.GetStart()) && int64(port) < int64(r.DestinationPortRange.GetEnd())
	}
	return false
}
