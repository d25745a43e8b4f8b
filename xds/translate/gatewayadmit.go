package translate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// serverAdmission answers which VirtualServices a Gateway server takes,
// as Istio reads server hosts "namespace/host": "*/" (or no namespace)
// admits any namespace's VirtualServices, "./" only the Gateway's own,
// "ns/" only namespace ns. Hosts are grouped by namespace so a server
// with thousands of hosts answers in O(1) for exact hosts.
type serverAdmission struct {
	byNS map[string]hostSet // "*" = any namespace
	// exact lists the server's exact hosts per namespace key, for
	// narrowing a wildcard SNI to what the server exposes.
	exact map[string][]string
}

func newServerAdmission(s gwServer) serverAdmission {
	hosts := map[string][]string{}
	for _, h := range s.server.GetHosts() {
		ns, host, ok := strings.Cut(h, "/")
		if !ok {
			ns, host = "*", h
		}
		if ns == "." {
			ns = s.gw.Namespace
		}
		hosts[ns] = append(hosts[ns], strings.ToLower(host))
	}
	a := serverAdmission{byNS: make(map[string]hostSet, len(hosts)), exact: map[string][]string{}}
	for ns, hs := range hosts {
		a.byNS[ns] = newHostSet(hs)
		for _, h := range hs {
			if !strings.HasPrefix(h, "*") {
				a.exact[ns] = append(a.exact[ns], h)
			}
		}
	}
	return a
}

// admits reports whether the server takes host from a VirtualService in
// namespace ns.
func (a serverAdmission) admits(ns, host string) bool {
	if s, ok := a.byNS["*"]; ok && s.allows(host) {
		return true
	}
	s, ok := a.byNS[ns]
	return ok && s.allows(host)
}

// sniHosts narrows a tls route's SNI hosts to those the server exposes
// to namespace ns: an SNI a server host covers stays; a wildcard SNI
// covering some of the server's exact hosts becomes those hosts; any
// other SNI is dropped (it would open the gateway to a host it does not
// serve).
func (a serverAdmission) sniHosts(ns string, snis []string) []string {
	var out []string
	for _, sni := range snis {
		sni = strings.ToLower(sni)
		if a.covers(ns, sni) {
			out = append(out, sni)
			continue
		}
		if strings.HasPrefix(sni, "*") {
			for _, key := range []string{"*", ns} {
				for _, h := range a.exact[key] {
					if hostMatches(sni, h) {
						out = append(out, h)
					}
				}
			}
		}
	}
	return sortedUnique(out)
}

// covers: a server host (exact or wildcard) matches every name sni can
// match.
func (a serverAdmission) covers(ns, sni string) bool {
	for _, key := range []string{"*", ns} {
		s, ok := a.byNS[key]
		if !ok {
			continue
		}
		if s.exact[sni] {
			return true
		}
		for _, w := range s.wildcard {
			if hostMatches(w, sni) {
				return true
			}
		}
	}
	return false
}

// gatewayVisible: a VirtualService serves a gateway proxy only when it is
// exported to the proxy's namespace (Istio selects a gateway's
// VirtualServices by exportTo as well as by spec.gateways).
func (g *gen) gatewayVisible(cfg *mesh.Config) bool {
	return exportedTo(cfg.Spec.(*networking.VirtualService).GetExportTo(), cfg.Namespace, g.proxy.Namespace)
}

// vsAdmitted: the VirtualService is visible and the server admits at
// least one of its hosts (Istio's pickMatchingGatewayHosts for TCP and
// TLS routes).
func (g *gen) vsAdmitted(a serverAdmission, cfg *mesh.Config) bool {
	if !g.gatewayVisible(cfg) {
		return false
	}
	for _, h := range cfg.Spec.(*networking.VirtualService).GetHosts() {
		if a.admits(cfg.Namespace, strings.ToLower(h)) {
			return true
		}
	}
	return false
}
