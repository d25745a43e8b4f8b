// Package ambient serves ambient node proxies (`ward node`) their config
// over delta ADS: per node, the Istio objects it needs (every
// WorkloadEntry and ServiceEntry, the PeerAuthentications of its
// workloads' namespaces and the root namespace, the AuthorizationPolicies
// that apply to its workloads, and MeshConfig) as Istio's MCP-over-xDS
// resources (package mesh/mcp). Each stream is bound to the node named in
// the caller's node certificate; only changed resources are sent, and
// resources the node no longer needs are sent as removed.
package ambient
