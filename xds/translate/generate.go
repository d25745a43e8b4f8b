package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/mesh"
)

// ChainSecurity is one inbound filter chain variant decided by the authn
// hook: an extra match (e.g. transport_protocol "tls") and the transport
// socket terminating it (nil = plaintext).
type ChainSecurity struct {
	Match           *listener.FilterChainMatch
	TransportSocket *core.TransportSocket
}

// Hooks let the authn and authz packages plug security into the output
// without the translators knowing about policies. Every hook is optional;
// the defaults are plaintext and no filters.
type Hooks struct {
	// InboundSecurity returns the chain variants for an inbound port
	// (PeerAuthentication). Empty means one plaintext chain.
	InboundSecurity func(s *mesh.Snapshot, p *mesh.Proxy, port uint32) []ChainSecurity
	// UpstreamTLS returns a cluster's transport socket when its
	// DestinationRule sets no tls (auto mTLS). Nil means plaintext.
	UpstreamTLS func(s *mesh.Snapshot, p *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string) *core.TransportSocket
	// HTTPFilters returns filters placed before fault/CORS/router (jwt_authn,
	// ext_authz, RBAC).
	HTTPFilters func(s *mesh.Snapshot, p *mesh.Proxy, dir Direction, port uint32) []*hcmv3.HttpFilter
	// Fingerprint hashes whatever the hooks read for p, so that cached
	// output is recomputed when policies change.
	Fingerprint func(s *mesh.Snapshot, p *mesh.Proxy) string
}

// gen carries one generation run.
type gen struct {
	ix    *Index
	sc    *Scope
	proxy *mesh.Proxy
	hooks Hooks
	res   *Resources
}

// Generate computes every resource for the proxy of scope sc. It is pure:
// equal inputs give equal output.
func Generate(ix *Index, sc *Scope, hooks Hooks) *Resources {
	g := &gen{ix: ix, sc: sc, proxy: sc.Proxy, hooks: hooks, res: &Resources{}}
	switch g.proxy.Type {
	case mesh.ProxyGRPC:
		g.grpc()
	case mesh.ProxyRouter:
		g.router()
	default:
		g.sidecar()
	}
	g.res.sort()
	return g.res
}

// clusters emits the outbound clusters of every visible service port.
func (g *gen) clusters() {
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			g.outboundClusters(svc, p)
		}
	}
}
