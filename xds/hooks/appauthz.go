package hooks

import (
	"github.com/wardmesh/ward/mesh"
)

// Node metadata by which a proxyless gRPC workload says how it enforces
// authorisation (`ward agent --authz`, agent.MetaAuthz).
const (
	MetaAuthz     = "WARD_AUTHZ"
	AuthzRBAC     = "rbac"
	AuthzExtAuthz = "ext-authz"
)

// appEnforces reports whether proxy's application enforces authorisation
// itself (the authz/grpcauthz interceptor calling Ward's ext_authz
// server), so its inbound listeners get no RBAC filters: a proxyless gRPC
// proxy (GENERATOR grpc) with WARD_AUTHZ "ext-authz". Envoy proxies never
// do. Inbound mTLS (PeerAuthentication) is unaffected.
//
// This grants nothing to anyone but the workload: a server already
// controls its own inbound enforcement (it could drop the RBAC filter or
// ignore its verdict), the flag only moves enforcement into its process,
// and the interceptor fails closed. Any other value keeps native RBAC
// (fail closed), with a warning in Config.Log.
func appEnforces(p *mesh.Proxy) bool {
	return p.Type == mesh.ProxyGRPC && p.Metadata[MetaAuthz] == AuthzExtAuthz
}
