// Package authz owns authorisation: it validates AuthorizationPolicy, finds
// the policies that apply to a workload (PoliciesFor), compiles them into a
// Model and from it into Rego modules (one per policy) evaluated by OPA, and
// into native Envoy RBAC and ext_authz filter configuration. Decisions are
// explainable: each names the policy and rule that decided it. The package
// does no I/O; the ext_authz gRPC server lives in authz/extauthz and the
// decision log in authz/decisionlog.
package authz
