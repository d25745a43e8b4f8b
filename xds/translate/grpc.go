package translate

import (
	"fmt"
	"net"
	"strconv"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
)

// Server listener name prefixes: a grpc xDS server asks for its bootstrap's
// server_listener_resource_name_template with %s = the "IP:port" it
// listens on. GRPCServerListenerPrefix is grpc-go's default (and what
// Ward's agent writes), IstioGRPCServerListenerPrefix what Istio's agent
// writes. Ward serves both.
const (
	GRPCServerListenerPrefix      = "grpc/server?xds.resource.listening_address="
	IstioGRPCServerListenerPrefix = "xds.istio.io/grpc/lds/inbound/"
)

// grpcServerListenerPrefixes are the templates server listeners are
// published under.
var grpcServerListenerPrefixes = []string{GRPCServerListenerPrefix, IstioGRPCServerListenerPrefix}

// grpcWildcardAddrs are the addresses a server listening on ":port" asks
// for: grpc-go names the listener by net.Listener.Addr, "0.0.0.0:P" or
// "[::]:P".
var grpcWildcardAddrs = []string{"0.0.0.0", "::"}

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
		wildcard := map[uint32]bool{}
		for _, in := range g.sc.ports {
			l := g.grpcServerListener(in)
			g.res.Listeners = append(g.res.Listeners, grpcServerListenerNames(l, in, wildcard)...)
		}
	}
}

// grpcServerListenerNames publishes a server listener under every name a
// grpc server bound to its port may ask for, as Istio matches server
// listeners by port: each template prefix × the bound IP, and (for the
// first inbound address of each workload port) 0.0.0.0 and [::]. Each
// copy's address equals the address in its name, which grpc-go checks.
func grpcServerListenerNames(l *listener.Listener, in inboundPort, wildcard map[uint32]bool) []*listener.Listener {
	addrs := []string{in.addr}
	if !wildcard[in.target] {
		wildcard[in.target] = true
		addrs = append(addrs, grpcWildcardAddrs...)
	}
	out := make([]*listener.Listener, 0, len(addrs)*len(grpcServerListenerPrefixes))
	for _, addr := range addrs {
		for _, prefix := range grpcServerListenerPrefixes {
			c := l
			if len(out) > 0 {
				c = proto.Clone(l).(*listener.Listener)
			}
			c.Name = prefix + net.JoinHostPort(addr, strconv.FormatUint(uint64(in.target), 10))
			c.Address = socketAddress(addr, in.target)
			out = append(out, c)
		}
	}
	return out
}

func (g *gen) grpcOutbound() {
	g.clusters()
	if g.part&partConfig == 0 {
		return
	}
	taken := map[string]bool{} // listener names: every host:port first
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			taken[fmt.Sprintf("%s:%d", svc.Hostname, p.Number)] = true
		}
	}
	known := g.knownHosts()
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			name := fmt.Sprintf("%s:%d", svc.Hostname, p.Number)
			h := g.rdsHCM(name, name, Outbound, p.Number)
			vh := g.vhostFor(svc, p, "mesh")
			g.res.Listeners = append(g.res.Listeners, grpcAPIListener(name, h))
			for _, alt := range g.grpcAltNames(svc, p.Number, taken, known) {
				g.res.Listeners = append(g.res.Listeners, grpcAPIListener(alt, h))
				vh.Domains = append(vh.Domains, alt)
			}
			g.res.Routes = append(g.res.Routes, &route.RouteConfiguration{
				Name: name, VirtualHosts: []*route.VirtualHost{vh},
			})
		}
	}
}

func grpcAPIListener(name string, h *hcmv3.HttpConnectionManager) *listener.Listener {
	return &listener.Listener{Name: name, ApiListener: &listener.ApiListener{ApiListener: mustAny(h)}}
}

// grpcAltNames are the short xds:/// targets of a service port, as
// Istio's proxyless gRPC resolves them: "svc.ns:P", "svc.ns.svc:P" and,
// from the service's namespace, "svc:P" (altHosts). Each names an
// api_listener sharing the service port's route config, whose virtual
// host lists it too (grpc-go picks the virtual host by the target's
// authority). A name that is taken (another service's host:port or an
// earlier short name) or whose host is another service's hostname is
// skipped: listener names are unique and a real name wins.
func (g *gen) grpcAltNames(svc *mesh.Service, port uint32, taken, known map[string]bool) []string {
	var out []string
	for _, a := range altHosts(svc.Hostname, g.proxy.Namespace) {
		name := a + ":" + itoa(port)
		if known[a] || taken[name] {
			continue
		}
		taken[name] = true
		out = append(out, name)
	}
	return out
}

// inboundPort is one address:port the proxy's workload serves.
type inboundPort struct {
	addr   string
	port   uint32 // service port
	target uint32 // workload port: where the proxy accepts the traffic
	proto  mesh.Protocol
	// endpoint is where a sidecar forwards it on 127.0.0.1 when that is
	// not target: a Sidecar ingress listener's defaultEndpoint port.
	endpoint uint32
}

// upstream is the local port the inbound cluster sends to.
func (in inboundPort) upstream() uint32 {
	if in.endpoint != 0 {
		return in.endpoint
	}
	return in.target
}

// inboundPorts lists where the proxy's workload listens: for each service
// it serves, the endpoints at the proxy's IPs that are its workload (whose
// labels it carries, or which it runs: mesh.Proxy.Runs), so the
// workload's own named ports are honoured; else the service target ports
// on every IP.
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
				if ips[ep.Workload.Address] && (mesh.Selector(ep.Workload.Labels).Matches(p.Labels) || p.Runs(ep.Workload)) {
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
