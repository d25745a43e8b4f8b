// Package jwks owns the control plane's JSON Web Key Set resolver: it
// fetches the keys of every issuer a RequestAuthentication names (from
// jwksUri, or by OIDC discovery at <issuer>/.well-known/openid-configuration),
// validates and normalizes them before anything is inlined into Envoy,
// caches them, refreshes them on an injected clock, retries failures with
// exponential backoff, keeps the last good set when a fetch fails or
// returns garbage, and calls back as soon as an issuer's keys change so
// the server can push. While an issuer has no keys the translator inlines
// authn.FailClosedJWKS, so presented tokens are rejected. Per-issuer fetch
// state is exposed as JSON (/debug/jwks), Prometheus metrics and through
// authn.KeyErrors for object status.
package jwks
