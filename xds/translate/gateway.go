package translate

import (
	"fmt"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// gwServer is one Gateway server with the gateway it belongs to.
type gwServer struct {
	gw     *mesh.Config
	server *networking.Server
	index  int
}

func (s gwServer) gwName() string { return s.gw.Namespace + "/" + s.gw.Name }

// router builds gateway output: one listener per server port, with HTTP
// routes from the VirtualServices bound to the gateway, and every visible
// service's clusters.
func (g *gen) router() {
	g.clusters()
	if g.part&partConfig == 0 {
		return
	}
	byPort := map[uint32][]gwServer{}
	for _, gw := range g.sc.Gateways {
		for i, s := range gw.Spec.(*networking.Gateway).GetServers() {
			byPort[s.GetPort().GetNumber()] = append(byPort[s.GetPort().GetNumber()], gwServer{gw: gw, server: s, index: i})
		}
	}
	for _, port := range sortedKeys32(byPort) {
		g.gatewayListener(port, byPort[port])
	}
	g.res.Clusters = append(g.res.Clusters, passthroughClusters()...)
}

func (g *gen) gatewayListener(port uint32, servers []gwServer) {
	l := &listener.Listener{
		Name: fmt.Sprintf("0.0.0.0_%d", port), Address: socketAddress("0.0.0.0", port),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
	var plainHTTP []gwServer
	for _, s := range servers {
		proto := mesh.ParseProtocol(s.server.GetPort().GetProtocol())
		mode := s.server.GetTls().GetMode()
		passthrough := mode == networking.ServerTLSSettings_PASSTHROUGH || mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
		switch {
		case (proto == mesh.ProtocolHTTPS || proto == mesh.ProtocolTLS) && passthrough:
			l.FilterChains = append(l.FilterChains, g.passthroughChains(s)...)
		case proto == mesh.ProtocolHTTPS:
			l.FilterChains = append(l.FilterChains, g.httpsChain(s, port, misdirectedHosts(s, servers)))
		case proto == mesh.ProtocolTLS:
			// TLS terminated at the gateway, then proxied as TCP.
			fc := g.gatewayTCPChain(s, port)
			fc.FilterChainMatch = &listener.FilterChainMatch{ServerNames: sniNames(serverHosts(s.server))}
			fc.TransportSocket = TransportSocket(downstreamTLS(s.server.GetTls()))
			l.FilterChains = append(l.FilterChains, fc)
		case proto.IsHTTP():
			plainHTTP = append(plainHTTP, s) // tls here can only be httpsRedirect
		default:
			l.FilterChains = append(l.FilterChains, g.gatewayTCPChain(s, port))
		}
	}
	if len(plainHTTP) > 0 {
		name := fmt.Sprintf("http.%d", port)
		g.res.Routes = append(g.res.Routes, g.gatewayRoutes(name, port, plainHTTP))
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{Filters: []*listener.Filter{hcmFilter(g.rdsHCM(name, name, Gateway, port))}})
	}
	for _, fc := range l.FilterChains {
		if fc.GetFilterChainMatch().GetTransportProtocol() == "tls" || len(fc.GetFilterChainMatch().GetServerNames()) > 0 {
			l.ListenerFilters = []*listener.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})}}}
			break
		}
	}
	g.res.Listeners = append(g.res.Listeners, l)
}

// serverHosts strips the "namespace/" part of Gateway server hosts.
func serverHosts(s *networking.Server) []string {
	var out []string
	for _, h := range s.GetHosts() {
		if _, host, ok := strings.Cut(h, "/"); ok {
			h = host
		}
		out = append(out, strings.ToLower(h))
	}
	return out
}

func sniNames(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if h != "*" {
			out = append(out, h)
		}
	}
	return sortedUnique(out)
}

// httpsChain terminates TLS for one server (SIMPLE, MUTUAL, ISTIO_MUTUAL)
// and routes over RDS; the certificate comes over SDS.
func (g *gen) httpsChain(s gwServer, port uint32, misdirected []string) *listener.FilterChain {
	name := fmt.Sprintf("https.%d.%s.%s.%s", port, serverName(s), s.gw.Name, s.gw.Namespace)
	g.res.Routes = append(g.res.Routes, withMisdirected(g.gatewayRoutes(name, port, []gwServer{s}), port, misdirected))
	return &listener.FilterChain{
		Name:             name,
		FilterChainMatch: &listener.FilterChainMatch{ServerNames: sniNames(serverHosts(s.server))},
		Filters:          []*listener.Filter{hcmFilter(g.rdsHCM(name, name, Gateway, port))},
		TransportSocket:  g.serverTLS(s.server.GetTls()),
	}
}

// serverTLS is the transport socket terminating a server's TLS. Every
// ISTIO_MUTUAL server's is the same (the workload's own certificate and
// roots, nothing from the server), so a generation packs that one once.
func (g *gen) serverTLS(t *networking.ServerTLSSettings) *core.TransportSocket {
	if t.GetMode() != networking.ServerTLSSettings_ISTIO_MUTUAL {
		return TransportSocket(downstreamTLS(t))
	}
	if g.istioMutual == nil {
		g.istioMutual = TransportSocket(downstreamTLS(t))
	}
	return g.istioMutual
}

func serverName(s gwServer) string {
	if n := s.server.GetName(); n != "" {
		return n
	}
	return fmt.Sprintf("%d", s.index)
}

// gatewayRoutes builds a route config with one virtual host per host of
// each VirtualService bound to the servers' gateway and allowed by the
// server's hosts.
func (g *gen) gatewayRoutes(name string, port uint32, servers []gwServer) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: name, ValidateClusters: wrapperspb.Bool(false)}
	seen := map[string]bool{}
	portSuffix := ":" + itoa(port)
	for _, s := range servers {
		gwName := s.gwName()
		allowed := newHostSet(serverHosts(s.server))
		admission := newServerAdmission(s)
		// A VirtualService's hosts come one after another, and its routes
		// depend on the VirtualService, port and gateway only, so its
		// virtual hosts on this server share one translated route list
		// (as Istio's do; nothing edits a route after translation).
		var lastCfg *mesh.Config
		var routes []*route.Route
		for _, gh := range g.ix.gatewayHosts(gwName, allowed) {
			host := gh.host
			if seen[host] || !admission.admits(gh.cfg.Namespace, host) || !g.gatewayVisible(gh.cfg) {
				continue
			}
			seen[host] = true
			if gh.cfg != lastCfg {
				lastCfg, routes = gh.cfg, slices.Clip(g.httpRoutes(gh.cfg, port, gwName))
			}
			withPort := host + portSuffix
			vh := &route.VirtualHost{Name: withPort, Domains: []string{host, withPort}}
			vh.Routes = routes
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	httpsRedirects(rc, servers, seen, portSuffix)
	if len(rc.VirtualHosts) == 0 {
		rc.VirtualHosts = []*route.VirtualHost{{Name: "blackhole", Domains: []string{"*"}, Routes: []*route.Route{{
			Name: "no-virtual-service", Match: routeMatch(nil),
			Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 404}},
		}}}}
	}
	return rc
}

// hostSet answers "does a Gateway server host cover this VirtualService
// host" in O(1) for exact hosts (gateways often list thousands).
type hostSet struct {
	exact    map[string]bool
	wildcard []string
}

func newHostSet(hosts []string) hostSet {
	s := hostSet{exact: make(map[string]bool, len(hosts))}
	for _, h := range hosts {
		if strings.HasPrefix(h, "*") {
			s.wildcard = append(s.wildcard, h)
		} else {
			s.exact[h] = true
		}
	}
	return s
}

func (s hostSet) allows(host string) bool {
	if s.exact[host] {
		return true
	}
	for _, w := range s.wildcard {
		if hostMatches(w, host) {
			return true
		}
	}
	if strings.HasPrefix(host, "*") { // a wildcard VirtualService host
		for h := range s.exact {
			if hostMatches(host, h) {
				return true
			}
		}
	}
	return false
}

// passthroughChains routes TLS by SNI from the bound VirtualServices' tls
// routes without terminating it.
func (g *gen) passthroughChains(s gwServer) []*listener.FilterChain {
	var out []*listener.FilterChain
	seen := map[string]bool{}
	admission := newServerAdmission(s)
	for _, vsCfg := range g.ix.GatewayVirtualServices(s.gwName()) {
		if !g.vsAdmitted(admission, vsCfg) {
			continue
		}
		for _, tr := range vsCfg.Spec.(*networking.VirtualService).GetTls() {
			for _, m := range tr.GetMatch() {
				if !l4Applies(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), g.proxy, s.server.GetPort().GetNumber(), s.gwName()) {
					continue
				}
				snis := admission.sniHosts(vsCfg.Namespace, m.GetSniHosts())
				key := strings.Join(snis, ",")
				if seen[key] || len(snis) == 0 {
					continue
				}
				seen[key] = true
				dests := g.weightedDests(vsCfg.Namespace, tr.GetRoute(), s.server.GetPort().GetNumber())
				out = append(out, &listener.FilterChain{
					Name:             "passthrough:" + key,
					FilterChainMatch: &listener.FilterChainMatch{ServerNames: snis, TransportProtocol: "tls"},
					Filters:          g.tcpFilters(Gateway, s.server.GetPort().GetNumber(), dests[0].cluster, dests),
				})
			}
		}
	}
	return out
}

// gatewayTCPChain forwards a TCP server's traffic by the first tcp route
// of a bound VirtualService (BlackHole when none).
func (g *gen) gatewayTCPChain(s gwServer, port uint32) *listener.FilterChain {
	dests := []weighted{{cluster: BlackHoleCluster}}
	admission := newServerAdmission(s)
	for _, vsCfg := range g.ix.GatewayVirtualServices(s.gwName()) {
		if !g.vsAdmitted(admission, vsCfg) {
			continue
		}
		for _, tr := range vsCfg.Spec.(*networking.VirtualService).GetTcp() {
			if l4RouteApplies(tr.GetMatch(), g.proxy, port, s.gwName()) {
				dests = g.weightedDests(vsCfg.Namespace, tr.GetRoute(), port)
				break
			}
		}
		if dests[0].cluster != BlackHoleCluster {
			break
		}
	}
	return &listener.FilterChain{Name: "tcp:" + s.gwName(), Filters: g.tcpFilters(Gateway, port, dests[0].cluster, dests)}
}
