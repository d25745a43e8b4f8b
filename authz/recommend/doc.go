// Package recommend proposes least-privilege AuthorizationPolicies from
// observed calls: per destination workload, the sources, ports, methods
// and (collapsed) paths that were seen allowed, as Istio YAML annotated
// with the evidence and meant to be applied in dry-run first. It is pure:
// calls in, policies out; reading records and deciding are the caller's.
package recommend
