// Package node is Ward's ambient-mode node proxy (`ward node`): it
// enrols the workloads scheduled on its node, obtains a certificate for
// each (keys made here, never leaving the process), captures their
// traffic inside each workload's network namespace, carries it over HBONE
// (package node/hbone) with the source workload's identity, and enforces
// the destination workload's PeerAuthentication and the L4 part of its
// AuthorizationPolicies with the authz engine (never a second
// implementation of Istio's semantics).
package node
