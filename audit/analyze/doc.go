// Package analyze owns `ward analyze`: config analyzers with stable codes
// over a snapshot — broken references, selectors that match nothing, JWT
// claim routing without RequestAuthentication, DestinationRule TLS without
// SAN checks — plus the authn and authz findings and the source's schema
// rejections, each under a code that never changes meaning.
package analyze
