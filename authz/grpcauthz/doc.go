// Package grpcauthz enforces Ward's authorisation in a proxyless gRPC
// server through Ward's ext_authz server (package authz/extauthz): its
// interceptors send, per RPC, the envoy.service.auth.v3 CheckRequest
// Envoy would send for that request (the peer's SPIFFE ID from the mTLS
// certificate, addresses, method POST, path = the full method, headers =
// the incoming metadata), marked as coming from a proxyless interceptor so
// the server authenticates the raw JWT itself. Denials become
// PermissionDenied (Unauthenticated for a rejected token) carrying the
// server's reason; any failure to get a verdict denies (fail closed). The
// workload's namespace and labels come from the grpc xDS bootstrap that
// `ward agent --output-dir` writes; MTLSFromDir dials the server over
// mTLS with the certificate files it writes there.
package grpcauthz
