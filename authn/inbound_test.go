package authn

import (
	"fmt"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wardmesh/ward/mesh"
)

func testHCM(port uint32) []*listener.Filter {
	m := &hcm.HttpConnectionManager{
		StatPrefix: fmt.Sprintf("inbound_%d", port),
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
			Name: fmt.Sprintf("inbound|%d", port),
			VirtualHosts: []*route.VirtualHost{{Name: "inbound", Domains: []string{"*"}, Routes: []*route.Route{{
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: fmt.Sprintf("inbound|%d||", port)}}},
			}}}},
		}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})}}},
	}
	return []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(m)}}}
}

func testTCP(port uint32) []*listener.Filter {
	m := &tcpproxy.TcpProxy{StatPrefix: fmt.Sprintf("inbound_%d", port), ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: fmt.Sprintf("inbound|%d||", port)}}
	return []*listener.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(m)}}}
}

var protocols = map[string]mesh.Protocol{"http": mesh.ProtocolHTTP, "tcp": mesh.ProtocolTCP, "sniffed": mesh.ProtocolUnknown}

var serverTLS = ServerOptions{TrustDomains: []string{"cluster.local"}}

// virtualInbound builds a listener for one port the way the xDS core will.
func virtualInbound(t *testing.T, ports map[uint32]Mode, proto mesh.Protocol) *listener.Listener {
	t.Helper()
	l := &listener.Listener{Name: "virtualInbound", Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15006}}}}}
	for _, port := range sortedPorts(ports) {
		chains, err := InboundChains(InboundPort{Port: port, Protocol: proto, HTTP: testHCM(port), TCP: testTCP(port)}, ports[port], serverTLS)
		if err != nil {
			t.Fatal(err)
		}
		l.FilterChains = append(l.FilterChains, chains...)
	}
	l.ListenerFilters = ListenerFilters(l.FilterChains)
	return l
}

func sortedPorts(m map[uint32]Mode) []uint32 {
	var out []uint32
	for p := range m {
		out = append(out, p)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestInboundGolden(t *testing.T) {
	for _, mode := range []Mode{ModeStrict, ModePermissive, ModeDisable} {
		for pname, proto := range protocols {
			t.Run(string(mode)+"-"+pname, func(t *testing.T) {
				l := virtualInbound(t, map[uint32]Mode{8080: mode}, proto)
				mustValidate(t, l)
				golden(t, "inbound-"+strings.ToLower(string(mode))+"-"+pname, l)
			})
		}
	}
}

func TestInboundMixedPortsInspectorOnlyWhereNeeded(t *testing.T) {
	l := virtualInbound(t, map[uint32]Mode{8080: ModeStrict, 9090: ModeDisable}, mesh.ProtocolHTTP)
	mustValidate(t, l)
	golden(t, "inbound-mixed-strict-disable", l)
	if len(l.ListenerFilters) != 1 || l.ListenerFilters[0].GetName() != TLSInspectorName {
		t.Fatalf("listener filters = %v, want only tls_inspector", l.ListenerFilters)
	}
	if !disabled(l.ListenerFilters[0].GetFilterDisabled(), 9090) || disabled(l.ListenerFilters[0].GetFilterDisabled(), 8080) {
		t.Error("tls_inspector must run on the STRICT port 8080 and be disabled on the DISABLE port 9090")
	}
	if fs := ListenerFilters(virtualInbound(t, map[uint32]Mode{8080: ModeDisable}, mesh.ProtocolTCP).FilterChains); len(fs) != 0 {
		t.Errorf("a DISABLE TCP port needs no listener filter, got %v", fs)
	}
}

// TestInboundSimulation sends described connections through the generated
// listener and asserts which chain Envoy would pick.
func TestInboundSimulation(t *testing.T) {
	mtlsTCP := Conn{Port: 8080, TLS: true, ALPN: MTLSALPN}
	mtlsHTTP := Conn{Port: 8080, TLS: true, ALPN: MTLSHTTPALPN}
	grpcMTLS := Conn{Port: 8080, TLS: true, ALPN: []string{"h2"}}
	appTLS := Conn{Port: 8080, TLS: true, ALPN: []string{"h2", "http/1.1"}, SNI: "app.example.com"}
	plainHTTP := Conn{Port: 8080, HTTP: "http/1.1"}
	plainTCP := Conn{Port: 8080}
	cases := []struct {
		mode  Mode
		proto string
		conn  Conn
		want  string // chain kind, "" = no chain
	}{
		{ModeStrict, "http", plainHTTP, ""},
		{ModeStrict, "http", mtlsHTTP, "mtls-http"},
		{ModeStrict, "http", grpcMTLS, "mtls-http"},
		{ModeStrict, "tcp", plainTCP, ""},
		{ModeStrict, "tcp", mtlsTCP, "mtls-tcp"},
		{ModeStrict, "sniffed", plainHTTP, ""},
		{ModeStrict, "sniffed", plainTCP, ""},
		{ModeStrict, "sniffed", mtlsHTTP, "mtls-http"},
		{ModeStrict, "sniffed", mtlsTCP, "mtls-tcp"},
		{ModePermissive, "http", mtlsHTTP, "mtls-http"},
		{ModePermissive, "http", plainHTTP, "plaintext-http"},
		{ModePermissive, "tcp", mtlsTCP, "mtls-tcp"},
		{ModePermissive, "tcp", appTLS, "tls-passthrough"},
		{ModePermissive, "tcp", plainTCP, "plaintext-tcp"},
		{ModePermissive, "sniffed", mtlsHTTP, "mtls-http"},
		{ModePermissive, "sniffed", mtlsTCP, "mtls-tcp"},
		{ModePermissive, "sniffed", appTLS, "tls-passthrough"},
		{ModePermissive, "sniffed", plainHTTP, "plaintext-http"},
		{ModePermissive, "sniffed", plainTCP, "plaintext-tcp"},
		{ModeDisable, "http", plainHTTP, "plaintext-http"},
		{ModeDisable, "tcp", plainTCP, "plaintext-tcp"},
		{ModeDisable, "sniffed", plainHTTP, "plaintext-http"},
		{ModeDisable, "sniffed", plainTCP, "plaintext-tcp"},
		// DISABLE has no TLS chains: TLS bytes reach the TCP chain
		// unterminated and the mTLS handshake fails at the app.
		{ModeDisable, "tcp", mtlsTCP, "plaintext-tcp"},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s/%s/tls=%v,alpn=%v,http=%q", tc.mode, tc.proto, tc.conn.TLS, tc.conn.ALPN, tc.conn.HTTP)
		t.Run(name, func(t *testing.T) {
			l := virtualInbound(t, map[uint32]Mode{8080: tc.mode, 9090: ModeDisable}, protocols[tc.proto])
			fc, err := MatchFilterChain(l, tc.conn)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if fc != nil {
				got = strings.TrimPrefix(fc.GetName(), "inbound|8080|")
			}
			if got != tc.want {
				t.Fatalf("matched chain %q, want %q", got, tc.want)
			}
			if strings.HasPrefix(got, "mtls") {
				assertRequiresClientCert(t, fc)
			}
		})
	}
}

func assertRequiresClientCert(t *testing.T, fc *listener.FilterChain) {
	t.Helper()
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatalf("chain %s: transport socket: %v", fc.GetName(), err)
	}
	if !ctx.GetRequireClientCertificate().GetValue() {
		t.Errorf("chain %s does not require a client certificate", fc.GetName())
	}
	sans := ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].GetMatcher().GetPrefix() != "spiffe://cluster.local/" {
		t.Errorf("chain %s: SAN check = %v, want prefix spiffe://cluster.local/", fc.GetName(), sans)
	}
}

func TestInboundChainsErrors(t *testing.T) {
	if _, err := InboundChains(InboundPort{Port: 1, Protocol: mesh.ProtocolHTTP, TCP: testTCP(1)}, ModeStrict, serverTLS); err == nil {
		t.Error("HTTP port without HTTP filters must fail")
	}
	if _, err := InboundChains(InboundPort{Port: 1, Protocol: mesh.ProtocolTCP, TCP: testTCP(1)}, ModeUnset, serverTLS); err == nil {
		t.Error("unset mode must fail: callers resolve it with PeerPolicy.ModeFor")
	}
}

func TestMatchFilterChainAmbiguous(t *testing.T) {
	l := &listener.Listener{Name: "x", FilterChains: []*listener.FilterChain{{Name: "a"}, {Name: "b"}}}
	if _, err := MatchFilterChain(l, Conn{Port: 1}); err == nil {
		t.Error("two identical chains must be reported as ambiguous")
	}
}

func TestPassthroughChainsUsePortLevelModes(t *testing.T) {
	// Port 0 chains serve undeclared ports with the workload mode.
	chains, err := InboundChains(InboundPort{Port: 0, Protocol: mesh.ProtocolUnknown, HTTP: testHCM(0), TCP: testTCP(0)}, ModeStrict, serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	l := &listener.Listener{Name: "virtualInbound", FilterChains: chains}
	l.ListenerFilters = ListenerFilters(chains)
	mustValidate(t, l)
	if fc, _ := MatchFilterChain(l, Conn{Port: 31337}); fc != nil {
		t.Errorf("plaintext to an undeclared port of a STRICT workload matched %s", fc.GetName())
	}
	if fc, _ := MatchFilterChain(l, Conn{Port: 31337, TLS: true, ALPN: MTLSALPN}); fc == nil || fc.GetName() != "inbound|0|mtls-tcp" {
		t.Errorf("mTLS to an undeclared port matched %v", fc.GetName())
	}
}
