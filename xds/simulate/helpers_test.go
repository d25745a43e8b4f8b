package simulate

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func addr(ip string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: ip, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}

func cidr(ip string, bits uint32) *core.CidrRange {
	return &core.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(bits)}
}

// tcpChain is a chain named name whose tcp_proxy goes to cluster name.
func tcpChain(t testing.TB, name string, m *listener.FilterChainMatch) *listener.FilterChain {
	return &listener.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listener.Filter{tcpFilter(t, name)}}
}

func tcpFilter(t testing.TB, cluster string) *listener.Filter {
	return &listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{
		TypedConfig: mustAny(t, &tcpproxy.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: cluster}})}}
}

func tlsInspectorFilter(t testing.TB) *listener.ListenerFilter {
	return &listener.ListenerFilter{Name: tlsInspector, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspector.TlsInspector{})}}
}

func mtlsSocket(t testing.TB, require bool) *core.TransportSocket {
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tls.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(require)})}}
}

// httpChain is a chain whose HCM (inline route config rc) runs filters
// then the router.
func httpChain(t testing.TB, name string, m *listener.FilterChainMatch, h *hcm.HttpConnectionManager, filters ...*hcm.HttpFilter) *listener.FilterChain {
	h.HttpFilters = append(filters, &hcm.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	return &listener.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listener.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}}}
}

func httpFilter(t testing.TB, name string, m proto.Message) *hcm.HttpFilter {
	return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, m)}}
}

// catchAllRoutes is a route config sending everything to cluster.
func catchAllRoutes(cluster string) *route.RouteConfiguration {
	return &route.RouteConfiguration{Name: "rc", VirtualHosts: []*route.VirtualHost{{Name: "all", Domains: []string{"*"},
		Routes: []*route.Route{{Name: "default", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster}}}}}}}}
}

func inlineHCM(rc *route.RouteConfiguration) *hcm.HttpConnectionManager {
	return &hcm.HttpConnectionManager{StatPrefix: "in", RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: rc}}
}

func run(l *listener.Listener, req Request) *Result {
	return New(Config{Resources: Resources{Listeners: []*listener.Listener{l}}}).Run(req)
}
