package translate

import (
	"net"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wardmesh/ward/mesh"
)

// altHosts returns the short names a client in namespace ns may use for
// a Kubernetes-style host "<name>.<hns>.svc.cluster.local", as Istio's
// GenerateAltVirtualHosts does: "<name>.<hns>" and "<name>.<hns>.svc",
// and "<name>" alone when hns is the client's own namespace (a bare name
// resolves in the client's namespace only). Other hosts have none.
func altHosts(host, ns string) []string {
	base, ok := strings.CutSuffix(host, "."+DomainSuffix)
	if !ok {
		return nil
	}
	name, hns, ok := strings.Cut(base, ".")
	if !ok || name == "" || hns == "" {
		return nil
	}
	if hns == ns {
		return []string{name, base + ".svc", base}
	}
	return []string{base, base + ".svc"}
}

// withPorts lists each name, then name:port, in order.
func withPorts(names []string, port uint32) []string {
	out := make([]string, 0, 2*len(names))
	for _, n := range names {
		out = append(out, n, n+":"+itoa(port))
	}
	return out
}

// serviceAltDomains are the domains besides host and host:port that name a
// service port for a client in namespace ns (Istio's
// generateVirtualHostDomains): its short names and its addresses (not
// CIDRs), each with and without the port.
func serviceAltDomains(svc *mesh.Service, port uint32, ns string) []string {
	out := withPorts(altHosts(svc.Hostname, ns), port)
	for _, a := range svc.Addresses {
		if strings.Contains(a, "/") || a == "0.0.0.0" || a == "::" {
			continue
		}
		withPort := net.JoinHostPort(a, itoa(port))
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		out = append(out, a, withPort)
	}
	return out
}

// knownHosts is every visible service's own name: a short form that is
// another service's real hostname names that service, never this one.
// Built once per generation run.
func (g *gen) knownHosts() map[string]bool {
	if g.known == nil {
		g.known = make(map[string]bool, len(g.sc.Services))
		for _, svc := range g.sc.Services {
			g.known[svc.Hostname] = true
		}
	}
	return g.known
}

// addAltDomains adds to each service virtual host of an outbound route
// config the other names a client may put in the Host header (see
// serviceAltDomains), so that http://reviews:9080 from the namespace and
// http://reviews.bookinfo:9080 from anywhere route like the FQDN. A domain
// already in the route config (a service's own name, a VirtualService
// host) is not added again, and neither is one that is another service's
// hostname (with or without port): Envoy rejects a domain in two virtual
// hosts, and a real name wins over a short form, as in Istio.
func (g *gen) addAltDomains(rc *route.RouteConfiguration, sps []svcPort) {
	taken := map[string]bool{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			taken[d] = true
		}
	}
	known := g.knownHosts()
	byName := make(map[string]*route.VirtualHost, len(rc.VirtualHosts))
	for _, vh := range rc.VirtualHosts {
		byName[vh.Name] = vh
	}
	for _, sp := range sps {
		vh := byName[sp.svc.Hostname+":"+itoa(sp.port.Number)]
		if vh == nil {
			continue
		}
		for _, d := range serviceAltDomains(sp.svc, sp.port.Number, g.proxy.Namespace) {
			host, _, err := net.SplitHostPort(d)
			if err != nil {
				host = d
			}
			if taken[d] || known[host] {
				continue
			}
			taken[d] = true
			vh.Domains = append(vh.Domains, d)
		}
	}
}
