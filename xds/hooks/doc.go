// Package hooks assembles Ward's security translators into the xDS core:
// PeerAuthentication (authn) decides inbound filter chains and auto-mTLS,
// RequestAuthentication (authn) adds jwt_authn, and AuthorizationPolicy
// (authz) adds ext_authz or native RBAC after it, so authentication always
// runs before authorisation; proxyless gRPC workloads that enforce in
// their application (WARD_AUTHZ=ext-authz) get no RBAC. The Telemetry API
// (telemetry) adds access logs and tracing to every HTTP connection
// manager and tcp_proxy of sidecars and gateways. It is pure: key sets
// come from the caller.
package hooks
