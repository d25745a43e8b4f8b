package hooks

import (
	"log/slog"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry"
	"github.com/wardmesh/ward/xds/translate"
)

// Config holds what the security hooks need beyond the snapshot.
type Config struct {
	// Keys resolves JWKS for RequestAuthentication rules; nil means no
	// fetched keys (inline jwks only, remote issuers fail closed).
	Keys authn.KeySets
	// Authz configures authorization filters (provider clusters). Its zero
	// value enforces with native RBAC.
	Authz authz.HookConfig
	// ExtAuthz, when set, makes Envoy proxies (not proxyless gRPC, which has
	// no ext_authz) call Ward's OPA-backed ext_authz server there, failing
	// closed, instead of enforcing native RBAC.
	ExtAuthz *ExtAuthzTarget
	Log      *slog.Logger
}

// New returns the translate.Hooks that apply Ward's security policies.
func New(cfg Config) translate.Hooks {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Authz.Log == nil {
		cfg.Authz.Log = cfg.Log
	}
	if cfg.ExtAuthz != nil {
		cfg.Authz.ExtAuthzCluster = cfg.ExtAuthz.ClusterName()
	}
	h := translate.Hooks{
		InboundSecurity: cfg.inboundSecurity,
		PassthroughPorts: func(s *mesh.Snapshot, p *mesh.Proxy) []uint32 {
			if p.Type == mesh.ProxyRouter {
				return nil
			}
			return authn.PeerPolicyFor(s, p.Namespace, p.Labels).Ports()
		},
		UpstreamTLS:    authn.UpstreamTLSHook,
		HTTPFilters:    cfg.httpFilters,
		NetworkFilters: cfg.networkFilters,
		AccessLogs:     cfg.accessLogs,
		Tracing:        cfg.tracing,
		Fingerprint:    cfg.fingerprint,
	}
	if t := cfg.ExtAuthz; t != nil {
		h.Clusters = func(s *mesh.Snapshot, _ *mesh.Proxy) []*cluster.Cluster {
			return []*cluster.Cluster{t.Cluster(s.Mesh())}
		}
	}
	return h
}

// inboundSecurity maps PeerAuthentication to chain variants. Gateways are
// not subject to PeerAuthentication (as in Istio).
func (c Config) inboundSecurity(s *mesh.Snapshot, p *mesh.Proxy, port uint32) []translate.ChainSecurity {
	if p.Type == mesh.ProxyRouter {
		return nil
	}
	vs, findings := authn.InboundVariants(s, p, port, authn.PortProtocol(s, p, port))
	for _, f := range findings {
		c.Log.Debug("peer authentication finding", "proxy", p.ID, "port", port, "finding", f)
	}
	out := make([]translate.ChainSecurity, 0, len(vs))
	for _, v := range vs {
		out = append(out, translate.ChainSecurity{Name: v.Kind, Match: v.Match, TransportSocket: v.TransportSocket})
	}
	return out
}

// httpFilters puts authentication (jwt_authn) before authorization on
// the listeners that receive traffic for the proxy's workload: a sidecar's
// inbound listeners and a gateway's server listeners. Outbound listeners
// get neither.
func (c Config) httpFilters(s *mesh.Snapshot, p *mesh.Proxy, dir translate.Direction, port uint32) []*hcmv3.HttpFilter {
	if dir != translate.Inbound && dir != translate.Gateway && dir != translate.InboundTCP {
		return nil
	}
	fs := authn.JWTFilters(s, p, c.Keys)
	if appEnforces(p) {
		return fs
	}
	if v := p.Metadata[MetaAuthz]; v != "" && v != AuthzRBAC && v != AuthzExtAuthz {
		c.Log.Warn("unknown WARD_AUTHZ node metadata: enforcing native RBAC", "proxy", p.ID, "value", v)
	}
	authzDir := translate.Inbound
	if dir == translate.InboundTCP {
		authzDir = translate.InboundTCP
	}
	return append(fs, c.Authz.HTTPFilterHook(s, p, string(authzDir))...)
}

// networkFilters puts authorization before tcp_proxy on the chains that
// carry opaque TCP to the proxy's workload (every PeerAuthentication
// variant of a TCP or unknown-protocol port, and the inbound passthrough
// chain) and on a gateway's TCP, TLS-terminated and TLS passthrough
// chains: native network RBAC with Istio's TCP semantics, or Ward's
// ext_authz network filter, after the CUSTOM providers' filters. A
// proxy whose application enforces authorisation itself (appEnforces)
// gets none; it has no TCP chains anyway.
func (c Config) networkFilters(s *mesh.Snapshot, p *mesh.Proxy, dir translate.Direction, _ uint32) []*listener.Filter {
	if dir != translate.Inbound && dir != translate.Gateway {
		return nil
	}
	if appEnforces(p) {
		return nil
	}
	return c.Authz.NetworkFilterHook(s, p, string(translate.Inbound))
}

func (c Config) fingerprint(s *mesh.Snapshot, p *mesh.Proxy) string {
	fp := authn.Fingerprint(s, p, c.Keys) + "/" + authz.Fingerprint(s, p) + "/" + telemetry.Fingerprint(s, p)
	if appEnforces(p) {
		fp += "/" + MetaAuthz + "=" + AuthzExtAuthz
	}
	if c.ExtAuthz != nil {
		fp += "/" + c.ExtAuthz.fingerprint(s.Mesh())
	}
	return fp
}
