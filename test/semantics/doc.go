// Package semantics runs the authorization semantics suite
// (authz/testdata/semantics) through the assembled proxy output: each
// case's policies are translated for a sidecar serving the case's port as
// HTTP, HTTP/2, gRPC and TCP, the request is simulated over plaintext or
// mTLS by xds/simulate, and the verdict is compared with the Rego
// engine's on the same request. It holds only tests.
package semantics
