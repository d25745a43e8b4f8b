// Package translate owns Ward's pure xDS translators: Snapshot × Proxy →
// Envoy listeners, routes, clusters and endpoints, for Envoy sidecars,
// Envoy gateways (routers) and proxyless gRPC. It also owns validation of
// the generated resources (ValidateAll on every resource and every packed
// Any) and their reference consistency. It does no I/O.
package translate
