package translate

import (
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wardmesh/ward/mesh"
)

// misdirectedHosts are the server names other servers on s's port claim
// by SNI and s does not: Envoy hands a TLS connection to the chain whose
// server_names match the SNI, but the Host a client sends on it is its
// own choice. Without this a client could handshake with a SIMPLE "*"
// server and ask it for the host of a MUTUAL server (domain fronting),
// skipping that server's client-certificate check.
func misdirectedHosts(s gwServer, servers []gwServer) []string {
	own := map[string]bool{}
	for _, h := range sniNames(serverHosts(s.server)) {
		own[h] = true
	}
	var out []string
	for _, o := range servers {
		if (o.gw == s.gw && o.index == s.index) || !sniChain(o) {
			continue
		}
		for _, h := range sniNames(serverHosts(o.server)) {
			if !own[h] {
				out = append(out, h)
			}
		}
	}
	return sortedUnique(out)
}

// sniChain: the server's chain matches on SNI (HTTPS and TLS servers,
// terminated or passed through).
func sniChain(s gwServer) bool {
	p := mesh.ParseProtocol(s.server.GetPort().GetProtocol())
	return p == mesh.ProtocolHTTPS || p == mesh.ProtocolTLS
}

// withMisdirected makes a terminating server's route config refuse the
// hosts other chains own: each gets a virtual host answering 421
// Misdirected Request (RFC 9110 §15.5.20: the client retries on a
// connection whose SNI names it), replacing any virtual host for the
// same name. Exact names beat the server's wildcards and longer
// wildcards beat shorter ones in Envoy's virtual host selection, the
// same order as its server_names match, so a Host reaches only the
// chain its SNI would have picked.
func withMisdirected(rc *route.RouteConfiguration, port uint32, hosts []string) *route.RouteConfiguration {
	if len(hosts) == 0 {
		return rc
	}
	taken := map[string]bool{}
	for _, h := range hosts {
		taken[h] = true
	}
	kept := rc.VirtualHosts[:0:0]
	for _, vh := range rc.VirtualHosts {
		if len(vh.Domains) > 0 && taken[strings.TrimSuffix(vh.Domains[0], ":"+itoa(port))] {
			continue
		}
		kept = append(kept, vh)
	}
	for _, h := range hosts {
		kept = append(kept, &route.VirtualHost{
			Name: "misdirected:" + h, Domains: []string{h, h + ":" + itoa(port)},
			Routes: []*route.Route{{Name: "misdirected", Match: routeMatch(nil),
				Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 421}}}},
		})
	}
	rc.VirtualHosts = kept
	return rc
}

// httpsRedirects applies the servers' httpsRedirect as Istio does: a
// virtual host requires TLS when any server on the port whose host
// covers it asks for the redirect (not only the server listed first), and a
// redirecting server's host no VirtualService serves still gets a
// redirect-only virtual host. Otherwise a "*" server listed before a
// redirecting one served the latter's hosts in plaintext.
func httpsRedirects(rc *route.RouteConfiguration, servers []gwServer, seen map[string]bool, portSuffix string) {
	var redirect []string
	for _, s := range servers {
		if s.server.GetTls().GetHttpsRedirect() {
			redirect = append(redirect, serverHosts(s.server)...)
		}
	}
	if len(redirect) == 0 {
		return
	}
	for _, vh := range rc.VirtualHosts {
		host := strings.TrimSuffix(vh.Domains[0], portSuffix)
		for _, r := range redirect {
			if hostMatches(r, host) {
				vh.RequireTls = route.VirtualHost_ALL
				break
			}
		}
	}
	for _, h := range sortedUnique(redirect) {
		if seen[h] {
			continue
		}
		seen[h] = true
		domains := []string{h, h + portSuffix}
		if h == "*" {
			domains = domains[:1]
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{Name: h + portSuffix, Domains: domains, RequireTls: route.VirtualHost_ALL})
	}
}
