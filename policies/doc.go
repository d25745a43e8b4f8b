// Package policies holds Ward's embedded Rego: the library that implements
// Istio's AuthorizationPolicy semantics (string, path, IP and claim
// matching, and the CUSTOM → DENY → ALLOW decision order) that every module
// compiled by package authz imports, plus example zero-trust policy sets.
package policies
