// Package authn owns authentication: PeerAuthentication → the effective
// mTLS mode per workload and port, the inbound filter chains and TLS
// contexts that enforce it (Envoy sidecars and proxyless gRPC), the TLS
// compliance profile, and client-side auto-mTLS; RequestAuthentication →
// the Envoy jwt_authn filter, fed with key sets the control plane resolved
// itself (package authn/jwks does the fetching). Every function here is
// pure: it reads an immutable mesh.Snapshot and does no I/O.
package authn
