package translate

import (
	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wardmesh/ward/mesh"
)

// ChainSecurity is one inbound filter chain variant decided by the authn
// hook: an extra match (e.g. transport_protocol "tls") and the transport
// socket terminating it (nil = plaintext).
type ChainSecurity struct {
	// Name tells variants of one port apart ("tls", "plaintext"); it is
	// appended to the chain name, which Envoy requires to be unique.
	Name            string
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
	// PassthroughPorts lists the workload ports whose PeerAuthentication
	// mode is set port by port; a sidecar gets catch-all chains of their
	// own (InboundSecurity for that port) for those no service declares,
	// as Istio builds per-port passthrough chains.
	PassthroughPorts func(s *mesh.Snapshot, p *mesh.Proxy) []uint32
	// UpstreamTLS returns a cluster's transport socket when its
	// DestinationRule sets no tls (auto mTLS). Nil means plaintext.
	UpstreamTLS func(s *mesh.Snapshot, p *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string) *core.TransportSocket
	// HTTPFilters returns filters placed before fault/CORS/router (jwt_authn,
	// ext_authz, RBAC).
	HTTPFilters func(s *mesh.Snapshot, p *mesh.Proxy, dir Direction, port uint32) []*hcmv3.HttpFilter
	// NetworkFilters returns filters placed before tcp_proxy on every chain
	// that proxies opaque TCP to the proxy's own workload or through a
	// gateway (network RBAC, ext_authz): dir is Inbound (port 0 for the
	// inbound passthrough chain) or Gateway. A hook that cannot build its
	// filters must return ones that deny: the translator never drops a
	// chain's authorization.
	NetworkFilters func(s *mesh.Snapshot, p *mesh.Proxy, dir Direction, port uint32) []*listener.Filter
	// Clusters returns extra clusters that the hooks' filters reference
	// (the ext_authz server). Sidecars get them with the inbound side,
	// gateways with their listeners; proxyless gRPC never.
	Clusters func(s *mesh.Snapshot, p *mesh.Proxy) []*cluster.Cluster
	// AccessLogs returns the access_log entries (Telemetry) of every HTTP
	// connection manager (tcp false) and tcp_proxy (tcp true) on a
	// listener of direction dir: Outbound is the client side, Inbound,
	// InboundTCP and Gateway the server side. Proxyless gRPC never gets
	// them (grpc-go has no access logs).
	AccessLogs func(s *mesh.Snapshot, p *mesh.Proxy, dir Direction, tcp bool) []*accesslog.AccessLog
	// Tracing returns the tracing of every HTTP connection manager on a
	// listener of direction dir (Telemetry); nil means none.
	Tracing func(s *mesh.Snapshot, p *mesh.Proxy, dir Direction) *hcmv3.HttpConnectionManager_Tracing
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
	part  part
	known map[string]bool // visible service hostnames (knownHosts)
	// Immutable parts every HTTP connection manager or route of this
	// generation shares instead of building (and packing) its own: the
	// fault, CORS and router filters and the default timeout and retry
	// policy.
	faultFilter, corsFilter, routerFilter *hcmv3.HttpFilter
	retryDefault                          *route.RetryPolicy
	timeoutNone                           *durationpb.Duration
	istioMutual                           *core.TransportSocket // serverTLS
}

// part selects the outbound side (what the proxy calls), the inbound side
// (what serves its own workload), or both.
type part int

const (
	partConfig    part = 1 << iota // outbound clusters, listeners, routes
	partEndpoints                  // outbound endpoint sets
	partInbound
	partOutbound = partConfig | partEndpoints
	partAll      = partOutbound | partInbound
)

// Generate computes every resource for the proxy of scope sc. It is pure:
// equal inputs give equal output.
func Generate(ix *Index, sc *Scope, hooks Hooks) *Resources { return generate(ix, sc, hooks, partAll) }

// GenerateOutbound computes the outbound side only: everything that
// depends on what the proxy may call (OutboundFingerprint), shared by every
// proxy with the same fingerprint.
func GenerateOutbound(ix *Index, sc *Scope, hooks Hooks) *Resources {
	return generate(ix, sc, hooks, partOutbound)
}

// GenerateOutboundConfig computes the outbound side without endpoint sets
// (keyed by OutboundConfigFingerprint, which ignores endpoint churn).
func GenerateOutboundConfig(ix *Index, sc *Scope, hooks Hooks) *Resources {
	return generate(ix, sc, hooks, partConfig)
}

// GenerateEndpoints computes the outbound endpoint sets only (keyed by
// OutboundFingerprint).
func GenerateEndpoints(ix *Index, sc *Scope, hooks Hooks) *Resources {
	return generate(ix, sc, hooks, partEndpoints)
}

// GenerateInbound computes the inbound side only (what serves the proxy's
// own workload), keyed by InboundFingerprint.
func GenerateInbound(ix *Index, sc *Scope, hooks Hooks) *Resources {
	return generate(ix, sc, hooks, partInbound)
}

// Merge returns the union of two generated parts, sorted by name.
func Merge(a, b *Resources) *Resources {
	r := &Resources{
		Listeners: append(append([]*listener.Listener(nil), a.Listeners...), b.Listeners...),
		Routes:    append(append([]*route.RouteConfiguration(nil), a.Routes...), b.Routes...),
		Clusters:  append(append([]*cluster.Cluster(nil), a.Clusters...), b.Clusters...),
		Endpoints: append(append([]*endpoint.ClusterLoadAssignment(nil), a.Endpoints...), b.Endpoints...),
	}
	r.sort()
	return r
}

func generate(ix *Index, sc *Scope, hooks Hooks, p part) *Resources {
	g := &gen{ix: ix, sc: sc, proxy: sc.Proxy, hooks: hooks, res: &Resources{}, part: p}
	switch g.proxy.Type {
	case mesh.ProxyGRPC:
		g.grpc()
	case mesh.ProxyRouter:
		if p&partOutbound != 0 {
			g.router()
		}
	default:
		g.sidecar()
	}
	g.hookClusters()
	g.res.sort()
	return g.res
}

// hookClusters adds the hooks' extra clusters to the part that references
// them.
func (g *gen) hookClusters() {
	if g.hooks.Clusters == nil || g.proxy.Type == mesh.ProxyGRPC {
		return
	}
	want := partInbound
	if g.proxy.Type == mesh.ProxyRouter {
		want = partConfig
	}
	if g.part&want != 0 {
		g.res.Clusters = append(g.res.Clusters, g.hooks.Clusters(g.ix.snap, g.proxy)...)
	}
}

// clusters emits the outbound clusters of every visible service port.
func (g *gen) clusters() {
	for _, svc := range g.sc.Services {
		for _, p := range svc.Ports {
			g.outboundClusters(svc, p)
		}
	}
}

// MergeSorted is Merge for parts whose lists are already sorted by name
// (every generated part is): a linear merge, no sort.
func MergeSorted(a, b *Resources) *Resources {
	return &Resources{
		Listeners: mergeByName(a.Listeners, b.Listeners, (*listener.Listener).GetName),
		Routes:    mergeByName(a.Routes, b.Routes, (*route.RouteConfiguration).GetName),
		Clusters:  mergeByName(a.Clusters, b.Clusters, (*cluster.Cluster).GetName),
		Endpoints: mergeByName(a.Endpoints, b.Endpoints, (*endpoint.ClusterLoadAssignment).GetClusterName),
	}
}

func mergeByName[T any](a, b []T, name func(T) string) []T {
	out := make([]T, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if name(b[0]) < name(a[0]) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}
