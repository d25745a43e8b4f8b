package translate

import (
	"fmt"
	"net"
	"strconv"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wardmesh/ward/mesh"
)

// GRPCServerListenerPrefix is the server_listener_resource_name_template
// Ward's proxyless bootstrap sets, followed by "IP:port".
const GRPCServerListenerPrefix = "grpc/server?xds.resource.listening_address="

// GRPCServerListenerName names the inbound listener a grpc xDS server bound
// to addr:port asks for.
func GRPCServerListenerName(addr string, port uint32) string {
	return GRPCServerListenerPrefix + net.JoinHostPort(addr, strconv.FormatUint(uint64(port), 10))
}

// grpc builds proxyless output: one api_listener and route config per
// visible service port (named "host:port", the xds:/// target), the
// clusters and endpoints, and one server listener per inbound address.
func (g *gen) grpc() {
	if g.part&partOutbound != 0 {
		g.grpcOutbound()
	}
	if g.part&partInbound != 0 {
		for _, in := range g.sc.ports {
			g.res.Listeners = append(g.res.Listeners, g.grpcServerListener(in))
		}
	}
}

func (g *gen) grpcOutbound() {
	g.clusters()
	if g.part&partConfig == 0 {
		return
	}
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			name := fmt.Sprintf("%s:%d", svc.Hostname, p.Number)
			h := g.rdsHCM(name, name, Outbound, p.Number)
			g.res.Listeners = append(g.res.Listeners, &listener.Listener{
				Name:        name,
				ApiListener: &listener.ApiListener{ApiListener: mustAny(h)},
			})
			g.res.Routes = append(g.res.Routes, &route.RouteConfiguration{
				Name: name, VirtualHosts: []*route.VirtualHost{g.vhostFor(svc, p, "mesh")},
			})
		}
	}
}

// inboundPort is one address:port the proxy's workload serves.
type inboundPort struct {
	addr   string
	port   uint32 // service port
	target uint32 // workload port
	proto  mesh.Protocol
}

// inboundPorts lists where the proxy's workload listens: for each service
// selecting it, the endpoints at the proxy's IPs (so the workload's own
// named ports are honoured), or the service target ports on every IP.
func (ix *Index) inboundPorts(p *mesh.Proxy, inbound []*mesh.Service) []inboundPort {
	ips := map[string]bool{}
	for _, ip := range p.IPs {
		ips[ip] = true
	}
	seen := map[string]bool{}
	var out []inboundPort
	add := func(in inboundPort) {
		k := net.JoinHostPort(in.addr, strconv.FormatUint(uint64(in.target), 10))
		if !seen[k] {
			seen[k] = true
			out = append(out, in)
		}
	}
	for _, svc := range inbound {
		for _, sp := range svc.Ports {
			found := false
			for _, ep := range ix.snap.Endpoints(svc, sp) {
				if ips[ep.Workload.Address] && mesh.Selector(ep.Workload.Labels).Matches(p.Labels) {
					add(inboundPort{addr: ep.Workload.Address, port: sp.Number, target: ep.Port, proto: sp.Protocol})
					found = true
				}
			}
			if !found {
				t := sp.TargetPort
				if t == 0 {
					t = sp.Number
				}
				for _, ip := range p.IPs {
					add(inboundPort{addr: ip, port: sp.Number, target: t, proto: sp.Protocol})
				}
			}
		}
	}
	return out
}

// grpcServerListener is the inbound listener of a grpc xDS server: its
// address equals the bound IP:port and every route is NonForwardingAction.
func (g *gen) grpcServerListener(in inboundPort) *listener.Listener {
	rc := &route.RouteConfiguration{
		Name: InboundName(in.target),
		VirtualHosts: []*route.VirtualHost{{
			Name: "inbound", Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:   "default",
				Match:  routeMatch(nil),
				Action: &route.Route_NonForwardingAction{NonForwardingAction: &route.NonForwardingAction{}},
			}},
		}},
	}
	dir := Inbound
	if !in.proto.IsHTTP() {
		dir = InboundTCP // grpc-go serves every port with an HCM
	}
	h := g.inlineHCM(InboundName(in.target), rc, dir, in.target)
	l := &listener.Listener{
		Name:             GRPCServerListenerName(in.addr, in.target),
		Address:          socketAddress(in.addr, in.target),
		TrafficDirection: core.TrafficDirection_INBOUND,
	}
	for _, sec := range g.inboundSecurity(in.target) {
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{
			Name:             InboundName(in.target),
			FilterChainMatch: sec.Match,
			Filters:          []*listener.Filter{hcmFilter(h)},
			TransportSocket:  sec.TransportSocket,
		})
	}
	return l
}

// inboundSecurity asks the authn hook for chain variants; plaintext when
// there is no hook or it returns none.
func (g *gen) inboundSecurity(port uint32) []ChainSecurity {
	if g.hooks.InboundSecurity != nil {
		if s := g.hooks.InboundSecurity(g.ix.snap, g.proxy, port); len(s) > 0 {
			return s
		}
	}
	return []ChainSecurity{{}}
}
