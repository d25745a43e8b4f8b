package translate

import (
	"fmt"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// vsHostVhosts adds virtual hosts for VirtualService hosts that are not a
// service on this port (Istio's "non-service registry hosts", e.g. a
// VirtualService for reviews.example.com routing to reviews.bookinfo),
// as Istio's sidecar RDS does:
//
//   - a VirtualService whose hosts match a service with an HTTP port P
//     adds its other hosts to route config P;
//   - on route config 80, every VirtualService does, even one matching no
//     service at all (Istio's port-80 rule: listeners other than 80 only
//     select VirtualServices that match one of their services);
//   - the virtual host is named host:P with domains host and host:P;
//     names or domains already in the route config are not added again.
//
// Only VirtualServices bound to "mesh", exported to the proxy's namespace
// and allowed by its Sidecar egress hosts count. Proxyless gRPC gets none:
// Istio's gRPC generator builds listeners for registry services only.
func (g *gen) vsHostVhosts(rc *route.RouteConfiguration, port uint32, sps []svcPort) {
	onPort := make(map[string]bool, len(sps))
	for _, sp := range sps {
		onPort[sp.svc.Hostname] = true
	}
	domains := map[string]bool{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			domains[d] = true
		}
	}
	for _, e := range g.ix.vs {
		if len(e.hosts) == 0 || !boundTo(e, "mesh") || !exportedTo(e.spec.GetExportTo(), e.cfg.Namespace, g.proxy.Namespace) || !g.egressAllowsVS(e) {
			continue
		}
		extra, matched := splitVSHosts(e.hosts, onPort, sps)
		if len(extra) == 0 || (!matched && port != 80) {
			continue
		}
		routes := g.httpRoutes(e.cfg, port, "mesh")
		if len(routes) == 0 {
			continue
		}
		for _, h := range extra {
			if vh := newVSHost(h, port, routes, domains); vh != nil {
				rc.VirtualHosts = append(rc.VirtualHosts, vh)
			}
		}
	}
}

// newVSHost builds host:port's virtual host with the domains not yet
// taken (Envoy rejects a domain in two virtual hosts), or nil.
func newVSHost(host string, port uint32, routes []*route.Route, taken map[string]bool) *route.VirtualHost {
	name := fmt.Sprintf("%s:%d", host, port)
	if taken[name] {
		return nil
	}
	vh := &route.VirtualHost{Name: name, Routes: routes}
	for _, d := range []string{host, name} {
		if !taken[d] {
			taken[d] = true
			vh.Domains = append(vh.Domains, d)
		}
	}
	return vh
}

// splitVSHosts returns the VirtualService hosts that are not a service of
// the port (onPort: its services by hostname), and whether any host
// matched one.
func splitVSHosts(hosts []string, onPort map[string]bool, sps []svcPort) (extra []string, matched bool) {
	for _, h := range hosts {
		found := onPort[h]
		if !found && strings.HasPrefix(h, "*") {
			for _, sp := range sps {
				if hostMatches(h, sp.svc.Hostname) {
					found = true
					break
				}
			}
		}
		if found {
			matched = true
		} else {
			extra = append(extra, h)
		}
	}
	return extra, matched
}

// egressAllowsVS applies the proxy's Sidecar egress hosts to a
// VirtualService: one of its hosts must be allowed in the
// VirtualService's namespace.
func (g *gen) egressAllowsVS(e *vsEntry) bool {
	if g.sc.Sidecar == nil {
		return true
	}
	sc := g.sc.Sidecar.Spec.(*networking.Sidecar)
	for _, h := range e.hosts {
		if egressAllowsHost(sc, g.proxy.Namespace, e.cfg.Namespace, h) {
			return true
		}
	}
	return false
}
