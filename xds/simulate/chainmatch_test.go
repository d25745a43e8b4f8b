package simulate

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestChainMatchOrder checks each FilterChainMatch criterion, in Envoy's
// order, with the chains lacking the criterion as fallback.
func TestChainMatchOrder(t *testing.T) {
	port := func(p uint32) *listener.FilterChainMatch {
		return &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(p)}
	}
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", virtualInboundPort), ListenerFilters: []*listener.ListenerFilter{tlsInspectorFilter(t)},
		FilterChains: []*listener.FilterChain{
			tcpChain(t, "port-9000", port(9000)),
			tcpChain(t, "port-9001-ip", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9001), PrefixRanges: []*core.CidrRange{cidr("10.0.0.0", 8)}}),
			tcpChain(t, "port-9001-ip24", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9001), PrefixRanges: []*core.CidrRange{cidr("10.1.1.0", 24)}}),
			tcpChain(t, "sni-exact", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"a.example.com"}}),
			tcpChain(t, "sni-wild", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"*.example.com"}}),
			tcpChain(t, "sni-none", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), TransportProtocol: "tls"}),
			tcpChain(t, "tp-tls", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8443), TransportProtocol: "tls"}),
			tcpChain(t, "tp-raw", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8443), TransportProtocol: "raw_buffer"}),
			tcpChain(t, "alpn-h2", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8444), ApplicationProtocols: []string{"h2"}}),
			tcpChain(t, "alpn-http11", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8444), ApplicationProtocols: []string{"http/1.1"}}),
			tcpChain(t, "alpn-none", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8444)}),
			tcpChain(t, "src-local", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7000), SourceType: listener.FilterChainMatch_SAME_IP_OR_LOOPBACK}),
			tcpChain(t, "src-external", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7000), SourceType: listener.FilterChainMatch_EXTERNAL}),
			tcpChain(t, "src-ip", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7001), SourcePrefixRanges: []*core.CidrRange{cidr("192.168.0.0", 16)}}),
			tcpChain(t, "src-ip-any", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7001)}),
			tcpChain(t, "src-port", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7002), SourcePorts: []uint32{5555}}),
			tcpChain(t, "src-port-any", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7002)}),
			tcpChain(t, "direct-src", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(7003), DirectSourcePrefixRanges: []*core.CidrRange{cidr("172.16.0.0", 12)}}),
			tcpChain(t, "any-port", &listener.FilterChainMatch{}),
		}}
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"destination port", Request{DstPort: 9000, DstIP: "10.1.1.1"}, "port-9000"},
		{"unknown port: chain without port", Request{DstPort: 1234, DstIP: "10.1.1.1"}, "any-port"},
		{"longest destination prefix", Request{DstPort: 9001, DstIP: "10.1.1.1"}, "port-9001-ip24"},
		{"shorter prefix", Request{DstPort: 9001, DstIP: "10.2.0.1"}, "port-9001-ip"},
		{"exact server name", Request{DstPort: 443, TLS: true, SNI: "a.example.com"}, "sni-exact"},
		{"wildcard server name", Request{DstPort: 443, TLS: true, SNI: "b.example.com"}, "sni-wild"},
		{"no server name match: chain without names", Request{DstPort: 443, TLS: true, SNI: "other.org"}, "sni-none"},
		{"transport tls", Request{DstPort: 8443, TLS: true}, "tp-tls"},
		{"transport raw", Request{DstPort: 8443}, "tp-raw"},
		{"alpn: client's first listed protocol wins", Request{DstPort: 8444, TLS: true, ALPN: []string{"http/1.1", "h2"}}, "alpn-http11"},
		{"alpn h2", Request{DstPort: 8444, TLS: true, ALPN: []string{"h2"}}, "alpn-h2"},
		{"alpn none matches", Request{DstPort: 8444, TLS: true, ALPN: []string{"x"}}, "alpn-none"},
		{"source loopback", Request{DstPort: 7000, SrcIP: "127.0.0.1", DstIP: "10.0.0.1"}, "src-local"},
		{"source same ip", Request{DstPort: 7000, SrcIP: "10.0.0.1", DstIP: "10.0.0.1"}, "src-local"},
		{"source external", Request{DstPort: 7000, SrcIP: "10.0.0.2", DstIP: "10.0.0.1"}, "src-external"},
		{"source prefix", Request{DstPort: 7001, SrcIP: "192.168.3.4"}, "src-ip"},
		{"source prefix fallback", Request{DstPort: 7001, SrcIP: "10.9.9.9"}, "src-ip-any"},
		{"source port", Request{DstPort: 7002, SrcPort: 5555}, "src-port"},
		{"source port fallback", Request{DstPort: 7002, SrcPort: 6666}, "src-port-any"},
		{"direct source prefix", Request{DstPort: 7003, SrcIP: "172.16.1.1"}, "direct-src"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.DstIP = orDefault(tc.req.DstIP, "10.0.0.1")
			tc.req.Capture = Inbound
			res := run(l, tc.req)
			if res.Chain != tc.want {
				t.Errorf("chain %q, want %q\n%v", res.Chain, tc.want, res.Trace)
			}
		})
	}
}

// TestChainMatchNoBacktrack: once a more specific criterion matched,
// Envoy does not fall back to less specific chains that fail later.
func TestChainMatchNoBacktrack(t *testing.T) {
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), ListenerFilters: []*listener.ListenerFilter{tlsInspectorFilter(t)},
		FilterChains: []*listener.FilterChain{
			tcpChain(t, "port-tls", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80), TransportProtocol: "tls"}),
			tcpChain(t, "any", &listener.FilterChainMatch{}),
		}}
	res := run(l, Request{DstIP: "10.0.0.1", DstPort: 80})
	if res.Verdict != NoChain {
		t.Errorf("plaintext to port 80: %s, want NoChain (no backtracking to the port-less chain)", res)
	}
}

func TestDefaultChainAndNoMatch(t *testing.T) {
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80),
		FilterChains:       []*listener.FilterChain{tcpChain(t, "p1", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(1)})},
		DefaultFilterChain: tcpChain(t, "default", nil)}
	if res := run(l, Request{DstIP: "10.0.0.1", DstPort: 80}); res.Chain != "default" || res.Verdict != Allowed || res.Cluster != "default" {
		t.Errorf("default chain: %s", res)
	}
	l.DefaultFilterChain = nil
	if res := run(l, Request{DstIP: "10.0.0.1", DstPort: 80}); res.Verdict != NoChain {
		t.Errorf("no match without default: %s", res)
	}
	if res := run(l, Request{DstIP: "10.0.0.1", DstPort: 81}); res.Verdict != NoListener {
		t.Errorf("no listener: %s", res)
	}
}

func TestMTLSHandshake(t *testing.T) {
	fc := tcpChain(t, "mtls", &listener.FilterChainMatch{})
	fc.TransportSocket = mtlsSocket(t, true)
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	for _, tc := range []struct {
		req  Request
		want Verdict
	}{
		{Request{DstPort: 80}, TLSFailed},
		{Request{DstPort: 80, TLS: true}, TLSFailed},
		{Request{DstPort: 80, TLS: true, PeerURISAN: "spiffe://cluster.local/ns/a/sa/b"}, Allowed},
	} {
		if res := run(l, tc.req); res.Verdict != tc.want {
			t.Errorf("%+v: %s, want %s", tc.req, res, tc.want)
		}
	}
}

func TestListenerSelection(t *testing.T) {
	vo := &listener.Listener{Name: "virtualOutbound", Address: addr("0.0.0.0", 15001), UseOriginalDst: wrapperspb.Bool(true),
		FilterChains: []*listener.FilterChain{tcpChain(t, "passthrough", nil)}}
	vi := &listener.Listener{Name: "virtualInbound", Address: addr("0.0.0.0", 15006),
		FilterChains: []*listener.FilterChain{tcpChain(t, "inbound|8080||", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8080)})}}
	exact := &listener.Listener{Name: "10.0.0.5_5432", Address: addr("10.0.0.5", 5432), BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listener.FilterChain{tcpChain(t, "db", nil)}}
	wild := &listener.Listener{Name: "0.0.0.0_5432", Address: addr("0.0.0.0", 5432), BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listener.FilterChain{tcpChain(t, "any-db", nil)}}
	sim := New(Config{Resources: Resources{Listeners: []*listener.Listener{vo, vi, exact, wild}}})
	for _, tc := range []struct {
		req      Request
		listener string
	}{
		{Request{Capture: Outbound, DstIP: "10.0.0.5", DstPort: 5432}, "10.0.0.5_5432"},
		{Request{Capture: Outbound, DstIP: "10.0.0.6", DstPort: 5432}, "0.0.0.0_5432"},
		{Request{Capture: Outbound, DstIP: "10.0.0.6", DstPort: 1}, "virtualOutbound"},
		{Request{Capture: Inbound, DstIP: "10.0.0.9", DstPort: 8080}, "virtualInbound"},
		{Request{Capture: Direct, DstIP: "10.0.0.5", DstPort: 5432}, ""}, // bind_to_port false
	} {
		res := sim.Run(tc.req)
		if res.Listener != tc.listener {
			t.Errorf("%+v: listener %q, want %q", tc.req, res.Listener, tc.listener)
		}
	}
}

func TestMTLSSANCheck(t *testing.T) {
	ctx := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
				{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: prefix("spiffe://cluster.local/")}}}}}}}
	fc := tcpChain(t, "mtls", nil)
	fc.TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}}
	l := &listener.Listener{Name: "l", Address: addr("0.0.0.0", 80), FilterChains: []*listener.FilterChain{fc}}
	if res := run(l, Request{DstPort: 80, TLS: true, PeerURISAN: "spiffe://cluster.local/ns/a/sa/b"}); res.Verdict != Allowed {
		t.Errorf("mesh peer: %s", res)
	}
	if res := run(l, Request{DstPort: 80, TLS: true, PeerURISAN: "spiffe://other.domain/ns/a/sa/b"}); res.Verdict != TLSFailed {
		t.Errorf("foreign trust domain: %s", res)
	}
}
