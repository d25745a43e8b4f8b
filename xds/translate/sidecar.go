package translate

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	origdst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// Sidecar listener names and ports, as Istio spells them.
const (
	VirtualOutbound     = "virtualOutbound"
	VirtualInbound      = "virtualInbound"
	VirtualOutboundPort = 15001
	VirtualInboundPort  = 15006
)

// sidecar builds Envoy sidecar output.
func (g *gen) sidecar() {
	if g.part&partOutbound != 0 {
		g.clusters()
	}
	if g.part&partConfig != 0 {
		g.res.Clusters = append(g.res.Clusters, passthroughClusters()...)
		g.res.Listeners = append(g.res.Listeners, g.virtualOutbound())
		g.outboundListeners()
	}
	if g.part&partInbound != 0 {
		g.res.Listeners = append(g.res.Listeners, g.virtualInbound())
	}
}

func (g *gen) catchAll() string {
	if g.sc.Outbound == mesh.OutboundRegistryOnly {
		return BlackHoleCluster
	}
	return PassthroughCluster
}

func (g *gen) virtualOutbound() *listener.Listener {
	return &listener.Listener{
		Name:             VirtualOutbound,
		Address:          socketAddress("0.0.0.0", VirtualOutboundPort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{{
			Name:    "virtualOutbound-catchall-tcp",
			Filters: []*listener.Filter{g.tcpProxyFilter(Outbound, g.catchAll(), []weighted{{cluster: g.catchAll()}})},
		}},
	}
}

// virtualInbound has one filter chain (per security variant) for each
// port the workload serves, sending to its inbound|port|| cluster.
func (g *gen) virtualInbound() *listener.Listener {
	l := &listener.Listener{
		Name:             VirtualInbound,
		Address:          socketAddress("0.0.0.0", VirtualInboundPort),
		TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters: []*listener.ListenerFilter{
			{Name: "envoy.filters.listener.original_dst", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&origdst.OriginalDst{})}},
			{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})}},
		},
	}
	// Traffic to a port no service declares is still the workload's:
	// policies apply to it as opaque TCP, and so does the workload's
	// PeerAuthentication mode (Istio's inbound passthrough chains carry
	// the same authorization and mTLS settings).
	for _, sec := range g.inboundSecurity(0) {
		l.FilterChains = append(l.FilterChains, g.catchAllChain(0, sec))
	}
	for _, port := range g.passthroughPorts() {
		for _, sec := range g.inboundSecurity(port) {
			l.FilterChains = append(l.FilterChains, g.catchAllChain(port, sec))
		}
	}
	g.res.Clusters = append(g.res.Clusters, inboundPassthroughCluster())
	for _, in := range g.sc.ports {
		g.res.Clusters = append(g.res.Clusters, inboundCluster(in.target, in.upstream()))
		for _, sec := range g.inboundSecurity(in.target) {
			l.FilterChains = append(l.FilterChains, g.inboundChain(in, sec))
		}
	}
	return l
}

// catchAllChain is one security variant of the chain for ports no
// service declares: every such port (port 0), or one with a port-level
// PeerAuthentication mode.
func (g *gen) catchAllChain(port uint32, sec ChainSecurity) *listener.FilterChain {
	name := "virtualInbound-catchall"
	m := sec.Match
	if port != 0 {
		name += "-" + itoa(port)
		m = &listener.FilterChainMatch{}
		if sec.Match != nil {
			m = proto.Clone(sec.Match).(*listener.FilterChainMatch)
		}
		m.DestinationPort = wrapperspb.UInt32(port)
	}
	if sec.Name != "" {
		name += "-" + sec.Name
	}
	return &listener.FilterChain{
		Name:             name,
		FilterChainMatch: m,
		TransportSocket:  sec.TransportSocket,
		Filters:          g.tcpFilters(Inbound, 0, InboundPassthroughCluster, []weighted{{cluster: InboundPassthroughCluster}}),
	}
}

// passthroughPorts are the hook's port-level ports that have no inbound
// chain: not a target port of the proxy's services, nor an ingress port
// of its Sidecar when that lists them (Istio's
// needPerPortPassthroughFilterChain).
func (g *gen) passthroughPorts() []uint32 {
	if g.hooks.PassthroughPorts == nil {
		return nil
	}
	ingress := g.sc.Sidecar != nil && len(g.sc.Sidecar.Spec.(*networking.Sidecar).GetIngress()) > 0
	declared := map[uint32]bool{}
	for _, in := range g.sc.ports {
		declared[in.target] = true // the port its chains match
		if ingress {
			declared[in.port] = true
		}
	}
	var out []uint32
	for _, port := range g.hooks.PassthroughPorts(g.ix.snap, g.proxy) {
		if port != 0 && !declared[port] {
			out = append(out, port)
		}
	}
	return out
}

// sidecarInbound is the Sidecar's ingress list when set, else the ports of
// the services selecting the workload.
func (ix *Index) sidecarInbound(sc *Scope) []inboundPort {
	if sc.Sidecar != nil {
		if ing := sc.Sidecar.Spec.(*networking.Sidecar).GetIngress(); len(ing) > 0 {
			var out []inboundPort
			for _, il := range ing {
				// The sidecar accepts on the ingress port (its chains, and
				// its PeerAuthentication port, are that port's, as in
				// Istio) and forwards to the defaultEndpoint.
				p := il.GetPort()
				out = append(out, inboundPort{port: p.GetNumber(), target: p.GetNumber(),
					endpoint: endpointPort(il.GetDefaultEndpoint(), p.GetNumber()), proto: mesh.ProtocolFromPort(p.GetProtocol(), p.GetName())})
			}
			return out
		}
	}
	seen := map[uint32]bool{}
	var out []inboundPort
	for _, in := range ix.inboundPorts(sc.Proxy, sc.Inbound) {
		if !seen[in.target] {
			seen[in.target] = true
			in.addr = "" // sidecars match inbound traffic by port only
			out = append(out, in)
		}
	}
	if len(sc.Proxy.IPs) == 0 {
		for _, svc := range sc.Inbound {
			for _, p := range svc.Ports {
				t := p.TargetPort
				if t == 0 {
					t = p.Number
				}
				if !seen[t] {
					seen[t] = true
					out = append(out, inboundPort{port: p.Number, target: t, proto: p.Protocol})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].target < out[j].target })
	return out
}

// endpointPort reads the port from a defaultEndpoint "127.0.0.1:8080" or
// "unix://..."; 0 or unparsable falls back to def.
func endpointPort(ep string, def uint32) uint32 {
	i := strings.LastIndex(ep, ":")
	if i < 0 {
		return def
	}
	var n uint32
	if _, err := fmt.Sscanf(ep[i+1:], "%d", &n); err != nil || n == 0 {
		return def
	}
	return n
}

func (g *gen) inboundChain(in inboundPort, sec ChainSecurity) *listener.FilterChain {
	m := &listener.FilterChainMatch{}
	if sec.Match != nil {
		m = proto.Clone(sec.Match).(*listener.FilterChainMatch)
	}
	m.DestinationPort = wrapperspb.UInt32(in.target)
	name := InboundName(in.target)
	fc := &listener.FilterChain{Name: name, FilterChainMatch: m, TransportSocket: sec.TransportSocket}
	if sec.Name != "" {
		fc.Name = name + sec.Name
	}
	if in.proto.IsHTTP() {
		rc := &route.RouteConfiguration{Name: name, VirtualHosts: []*route.VirtualHost{{
			Name: "inbound|http|" + itoa(in.port), Domains: []string{"*"},
			Routes: []*route.Route{{Name: "default", Match: routeMatch(nil), Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: name},
			}}}},
		}}}
		fc.Filters = []*listener.Filter{hcmFilter(g.inlineHCM(name, rc, Inbound, in.target))}
	} else {
		fc.Filters = g.tcpFilters(Inbound, in.target, name, []weighted{{cluster: name}})
	}
	return fc
}
