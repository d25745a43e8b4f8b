package translate

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

type svcPort struct {
	svc  *mesh.Service
	port mesh.Port
}

// outboundListeners builds Istio's per-port outbound listeners: HTTP ports
// share 0.0.0.0_<port> with route config "<port>"; TCP/TLS services get
// <vip>_<port>, or 0.0.0.0_<port> when they have no address and no HTTP
// service uses the port.
func (g *gen) outboundListeners() {
	httpPorts := map[uint32][]svcPort{}
	tcpListeners := map[string][]svcPort{}
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() {
				httpPorts[p.Number] = append(httpPorts[p.Number], svcPort{svc, p})
			}
		}
	}
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() || p.Protocol == mesh.ProtocolUDP {
				continue
			}
			for _, addr := range listenAddrs(svc) {
				if addr == "0.0.0.0" && len(httpPorts[p.Number]) > 0 {
					continue // HTTP wins a wildcard port conflict, as in Istio
				}
				k := fmt.Sprintf("%s_%d", addr, p.Number)
				tcpListeners[k] = append(tcpListeners[k], svcPort{svc, p})
			}
		}
	}
	for _, port := range sortedKeys32(httpPorts) {
		g.httpOutbound(port, httpPorts[port])
	}
	for _, name := range sortedKeys(tcpListeners) {
		g.tcpOutbound(name, tcpListeners[name])
	}
}

func sortedKeys32[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func listenAddrs(svc *mesh.Service) []string {
	var out []string
	for _, a := range svc.Addresses {
		if !strings.Contains(a, "/") {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{"0.0.0.0"}
	}
	return out
}

func (g *gen) httpOutbound(port uint32, sps []svcPort) {
	name := itoa(port)
	rc := &route.RouteConfiguration{Name: name, ValidateClusters: wrapperspb.Bool(false)}
	for _, sp := range sps {
		rc.VirtualHosts = append(rc.VirtualHosts, g.vhostFor(sp.svc, sp.port, "mesh"))
	}
	g.vsHostVhosts(rc, port, sps)
	g.addAltDomains(rc, sps)
	rc.VirtualHosts = append(rc.VirtualHosts, g.catchAllVhost())
	g.res.Routes = append(g.res.Routes, rc)
	g.res.Listeners = append(g.res.Listeners, &listener.Listener{
		Name:             fmt.Sprintf("0.0.0.0_%d", port),
		Address:          socketAddress("0.0.0.0", port),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{hcmFilter(g.rdsHCM("outbound_0.0.0.0_"+name, name, Outbound, port))},
		}},
	})
}

// catchAllVhost is Istio's allow_any (to PassthroughCluster) or block_all
// (502) virtual host for hosts outside the registry.
func (g *gen) catchAllVhost() *route.VirtualHost {
	if g.sc.Outbound == mesh.OutboundRegistryOnly {
		return &route.VirtualHost{Name: "block_all", Domains: []string{"*"}, Routes: []*route.Route{{
			Name: "block_all", Match: routeMatch(nil),
			Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
		}}}
	}
	return &route.VirtualHost{Name: "allow_any", Domains: []string{"*"}, Routes: []*route.Route{{
		Name: "allow_any", Match: routeMatch(nil),
		Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: PassthroughCluster}, Timeout: durationZero()}},
	}}}
}

func (g *gen) tcpOutbound(name string, sps []svcPort) {
	addr, _, _ := strings.Cut(name, "_")
	port := sps[0].port.Number
	l := &listener.Listener{
		Name: name, Address: socketAddress(addr, port), BindToPort: wrapperspb.Bool(false),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
	seenSNI := map[string]bool{}
	for _, sp := range sps {
		for _, fc := range g.tlsChains(sp, "mesh", seenSNI) {
			l.FilterChains = append(l.FilterChains, fc)
		}
	}
	if len(l.FilterChains) > 0 {
		l.ListenerFilters = []*listener.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})}}}
	}
	first := sps[0]
	l.FilterChains = append(l.FilterChains, &listener.FilterChain{
		Name:    OutboundName(port, "", first.svc.Hostname),
		Filters: []*listener.Filter{g.tcpProxyFilter(Outbound, OutboundName(port, "", first.svc.Hostname), g.tcpDests(first, "mesh"))},
	})
	g.res.Listeners = append(g.res.Listeners, l)
}

// tcpDests applies the first matching tcp route of the service's
// VirtualService, else sends everything to the service's cluster.
func (g *gen) tcpDests(sp svcPort, gw string) []weighted {
	if vsCfg := g.ix.VirtualService(sp.svc.Hostname, g.proxy.Namespace, gw); vsCfg != nil {
		vs := vsCfg.Spec.(*networking.VirtualService)
		for _, tr := range vs.GetTcp() {
			if l4RouteApplies(tr.GetMatch(), g.proxy, sp.port.Number, gw) {
				return g.weightedDests(vsCfg.Namespace, tr.GetRoute(), sp.port.Number)
			}
		}
	}
	return []weighted{{cluster: OutboundName(sp.port.Number, "", sp.svc.Hostname)}}
}

func l4RouteApplies(ms []*networking.L4MatchAttributes, p *mesh.Proxy, port uint32, gw string) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if l4Applies(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), p, port, gw) {
			return true
		}
	}
	return false
}

func (g *gen) weightedDests(ns string, rds []*networking.RouteDestination, port uint32) []weighted {
	var out []weighted
	for _, d := range rds {
		out = append(out, weighted{cluster: g.destCluster(ns, d.GetDestination(), port), weight: uint32(d.GetWeight())})
	}
	return out
}

// tlsChains turns a VirtualService's tls routes into SNI filter chains.
func (g *gen) tlsChains(sp svcPort, gw string, seen map[string]bool) []*listener.FilterChain {
	vsCfg := g.ix.VirtualService(sp.svc.Hostname, g.proxy.Namespace, gw)
	if vsCfg == nil {
		return nil
	}
	var out []*listener.FilterChain
	for _, tr := range vsCfg.Spec.(*networking.VirtualService).GetTls() {
		for _, m := range tr.GetMatch() {
			if !l4Applies(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), g.proxy, sp.port.Number, gw) {
				continue
			}
			snis := sortedUnique(m.GetSniHosts())
			key := strings.Join(snis, ",")
			if seen[key] {
				continue
			}
			seen[key] = true
			dests := g.weightedDests(vsCfg.Namespace, tr.GetRoute(), sp.port.Number)
			out = append(out, &listener.FilterChain{
				Name:             "tls:" + key,
				FilterChainMatch: &listener.FilterChainMatch{ServerNames: snis, TransportProtocol: "tls"},
				Filters:          []*listener.Filter{g.tcpProxyFilter(Outbound, dests[0].cluster, dests)},
			})
		}
	}
	return out
}
