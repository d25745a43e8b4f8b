package authn

import (
	"sort"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Listener filter names.
const (
	TLSInspectorName  = "envoy.filters.listener.tls_inspector"
	HTTPInspectorName = "envoy.filters.listener.http_inspector"
)

// ListenerFilters returns the inspectors the chains need, and only where
// they are needed: tls_inspector when a chain matches on transport
// protocol, SNI or TLS ALPN; http_inspector when a plaintext chain matches
// on ALPN. When only some ports need an inspector it is disabled on the
// others by a destination-port predicate, so a DISABLE port never waits
// for a TLS ClientHello.
func ListenerFilters(chains []*listener.FilterChain) []*listener.ListenerFilter {
	var out []*listener.ListenerFilter
	if f := inspector(chains, needsTLSInspector, TLSInspectorName, mustAny(&tlsinspector.TlsInspector{})); f != nil {
		out = append(out, f)
	}
	if f := inspector(chains, needsHTTPInspector, HTTPInspectorName, mustAny(&httpinspector.HttpInspector{})); f != nil {
		out = append(out, f)
	}
	return out
}

func needsTLSInspector(m *listener.FilterChainMatch) bool {
	return m.GetTransportProtocol() == TransportTLS || len(m.GetServerNames()) > 0
}

func needsHTTPInspector(m *listener.FilterChainMatch) bool {
	return m.GetTransportProtocol() != TransportTLS && len(m.GetApplicationProtocols()) > 0
}

func inspector(chains []*listener.FilterChain, needs func(*listener.FilterChainMatch) bool, name string, cfg *anyType) *listener.ListenerFilter {
	perPort := map[uint32]bool{} // explicit ports → needs
	other := false               // chains without a port (passthrough)
	for _, c := range chains {
		m := c.GetFilterChainMatch()
		n := needs(m)
		if m.GetDestinationPort() == nil {
			other = other || n
			continue
		}
		perPort[m.GetDestinationPort().GetValue()] = perPort[m.GetDestinationPort().GetValue()] || n
	}
	var need, skip []uint32
	for p, n := range perPort {
		if n {
			need = append(need, p)
		} else {
			skip = append(skip, p)
		}
	}
	if len(need) == 0 && !other {
		return nil
	}
	f := &listener.ListenerFilter{Name: name, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: cfg}}
	switch {
	case other && len(skip) > 0:
		f.FilterDisabled = portsPredicate(skip)
	case !other && len(perPort) > 0 && len(chains) > 0 && (len(skip) > 0 || hasPortless(chains)):
		f.FilterDisabled = &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: portsPredicate(need)}}
	}
	return f
}

func hasPortless(chains []*listener.FilterChain) bool {
	for _, c := range chains {
		if c.GetFilterChainMatch().GetDestinationPort() == nil {
			return true
		}
	}
	return false
}

// portsPredicate matches connections to any of ports.
func portsPredicate(ports []uint32) *listener.ListenerFilterChainMatchPredicate {
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	rules := make([]*listener.ListenerFilterChainMatchPredicate, 0, len(ports))
	for _, p := range ports {
		rules = append(rules, &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_DestinationPortRange{
			DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1}}})
	}
	if len(rules) == 1 {
		return rules[0]
	}
	return &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_OrMatch{
		OrMatch: &listener.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules}}}
}
