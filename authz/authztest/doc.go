// Package authztest holds what authz's tests share across packages: the
// data format of the authorization semantics suite
// (authz/testdata/semantics) and its strict loader. Each consumer — the
// Rego engine, the RBAC evaluator, the ext_authz server and the assembled
// proxy output through xds/simulate — turns a Case into its own request.
// It imports nothing from Ward, so authz's internal tests can use it.
package authztest
