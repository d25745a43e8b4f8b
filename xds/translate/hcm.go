package translate

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wardmesh/ward/mesh"
)

// Envoy filter names.
const (
	FilterFault  = "envoy.filters.http.fault"
	FilterCORS   = "envoy.filters.http.cors"
	FilterRouter = "envoy.filters.http.router"
	FilterHCM    = "envoy.filters.network.http_connection_manager"
	FilterTCP    = "envoy.filters.network.tcp_proxy"
)

// Direction says which side of the proxy a listener serves.
type Direction string

// Directions.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
	Gateway  Direction = "gateway"
	// InboundTCP is an inbound HTTP connection manager serving a port whose
	// protocol is opaque TCP: a proxyless gRPC server (grpc-go has no
	// network filters) on a TCP-protocol port. Its authorization follows
	// TCP semantics (Istio drops ALLOW rules with HTTP-only conditions and
	// broadens the others).
	InboundTCP Direction = "inbound-tcp"
)

// httpFilters is the HTTP filter chain: the hook's filters (authn, authz)
// first, then fault and CORS, and the router last (Envoy and grpc both
// require it last).
func (g *gen) httpFilters(dir Direction, port uint32) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if g.hooks.HTTPFilters != nil {
		out = append(out, g.hooks.HTTPFilters(g.ix.snap, g.proxy, dir, port)...)
	}
	if g.routerFilter == nil {
		g.faultFilter = typedFilter(FilterFault, &faultv3.HTTPFault{})
		g.corsFilter = typedFilter(FilterCORS, &corsv3.Cors{})
		g.routerFilter = typedFilter(FilterRouter, &routerv3.Router{})
	}
	if dir != Inbound && dir != InboundTCP {
		out = append(out, g.faultFilter)
		if g.proxy.Type != mesh.ProxyGRPC {
			out = append(out, g.corsFilter)
		}
	}
	return append(out, g.routerFilter)
}

func typedFilter(name string, m interface{ ProtoReflect() protoreflectMessage }) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(m)}}
}

// rdsHCM is an HTTP connection manager that fetches route config name
// over ADS.
func (g *gen) rdsHCM(stat, routeName string, dir Direction, port uint32) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: stat,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: adsSource(), RouteConfigName: routeName,
		}},
		HttpFilters:      g.httpFilters(dir, port),
		UseRemoteAddress: wrapperspb.Bool(dir == Gateway),
	}
	g.pathNormalization(h)
	g.observability(h, dir)
	return h
}

// pathNormalization applies the mesh's pathNormalization level to an
// Envoy HCM exactly as Istio does (its listener builder sets these three
// fields on every HCM it builds: sidecar inbound and outbound, gateways):
//
//	NONE                      normalize_path false
//	BASE (default)            normalize_path true
//	MERGE_SLASHES             normalize_path, merge_slashes
//	DECODE_AND_MERGE_SLASHES  normalize_path, merge_slashes,
//	                          path_with_escaped_slashes_action UNESCAPE_AND_FORWARD
//
// path_with_escaped_slashes_action is KEEP_UNCHANGED otherwise. Ward's
// authorisation engine normalises the same way (authz.NormalizePath).
// Proxyless gRPC gets none of them: grpc-go ignores these fields, and
// its authorisation normalises through the engine (the ext_authz
// interceptor) or matches gRPC method paths, which it validates itself.
func (g *gen) pathNormalization(h *hcmv3.HttpConnectionManager) {
	if g.proxy.Type == mesh.ProxyGRPC {
		return
	}
	h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	switch g.ix.snap.Mesh().PathNormalizationLevel() {
	case mesh.PathNormalizationNone:
		h.NormalizePath = wrapperspb.Bool(false)
	case mesh.PathNormalizationMergeSlashes:
		h.NormalizePath, h.MergeSlashes = wrapperspb.Bool(true), true
	case mesh.PathNormalizationDecodeAndMergeSlashes:
		h.NormalizePath, h.MergeSlashes = wrapperspb.Bool(true), true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default:
		h.NormalizePath = wrapperspb.Bool(true)
	}
}

// inlineHCM is an HTTP connection manager with an inline route config.
func (g *gen) inlineHCM(stat string, rc *route.RouteConfiguration, dir Direction, port uint32) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     stat,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    g.httpFilters(dir, port),
	}
	g.pathNormalization(h)
	g.observability(h, dir)
	return h
}

func hcmFilter(h *hcmv3.HttpConnectionManager) *listener.Filter {
	return &listener.Filter{Name: FilterHCM, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

// weighted is a TCP destination with a weight.
type weighted struct {
	cluster string
	weight  uint32
}

// tcpFilters is the network filter stack of a chain proxying opaque TCP:
// the hook's filters (authorization), then tcp_proxy last.
func (g *gen) tcpFilters(dir Direction, port uint32, stat string, dests []weighted) []*listener.Filter {
	var out []*listener.Filter
	if g.hooks.NetworkFilters != nil {
		out = append(out, g.hooks.NetworkFilters(g.ix.snap, g.proxy, dir, port)...)
	}
	return append(out, g.tcpProxyFilter(dir, stat, dests))
}

// observability adds the Telemetry hooks' access logs and tracing to an
// HTTP connection manager; proxyless gRPC gets neither.
func (g *gen) observability(h *hcmv3.HttpConnectionManager, dir Direction) {
	if g.proxy.Type == mesh.ProxyGRPC {
		return
	}
	if g.hooks.AccessLogs != nil {
		h.AccessLog = g.hooks.AccessLogs(g.ix.snap, g.proxy, dir, false)
	}
	if g.hooks.Tracing != nil {
		h.Tracing = g.hooks.Tracing(g.ix.snap, g.proxy, dir)
	}
}

// tcpProxyFilter is tcp_proxy to dests with the Telemetry hooks' access
// logs for direction dir.
func (g *gen) tcpProxyFilter(dir Direction, stat string, dests []weighted) *listener.Filter {
	tp := &tcpv3.TcpProxy{StatPrefix: stat}
	if g.hooks.AccessLogs != nil && g.proxy.Type != mesh.ProxyGRPC {
		tp.AccessLog = g.hooks.AccessLogs(g.ix.snap, g.proxy, dir, true)
	}
	if len(dests) == 1 {
		tp.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: dests[0].cluster}
	} else {
		wc := &tcpv3.TcpProxy_WeightedCluster{}
		for _, d := range dests {
			wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: d.cluster, Weight: max(d.weight, 1)})
		}
		tp.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listener.Filter{Name: FilterTCP, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}
