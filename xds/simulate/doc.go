// Package simulate is an Envoy-semantics simulator over the resources Ward
// serves a proxy: given its listeners, route configurations and clusters
// and a described request, it answers what Envoy would do — which
// listener and filter chain take the connection, whether the TLS
// handshake succeeds, what each network filter (RBAC, ext_authz,
// tcp_proxy) or HTTP filter (jwt_authn, RBAC, ext_authz, fault, router)
// decides, which route matches and which upstream cluster is picked —
// with a trace of every step.
//
// It is pure: no I/O, no goroutines. It follows Envoy's documented
// semantics (filter-chain matching criterion by criterion without
// backtracking, RFC 3986 path normalisation, RBAC matchers, jwt_authn
// requirements, virtual host and route selection), not Ward's intent, so
// tests can judge the assembled output rather than the policy objects.
// What it cannot know (an external authorizer's answer) comes from a
// caller-supplied Checker.
package simulate
