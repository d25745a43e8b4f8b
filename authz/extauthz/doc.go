// Package extauthz is Ward's Envoy ext_authz v3 gRPC server
// (envoy.service.auth.v3.Authorization/Check). It identifies the workload
// from the check's context extensions (or serves one fixed workload when
// embedded in `ward agent`), evaluates the compiled AuthorizationPolicies
// with OPA through package authz (for checks from proxyless gRPC
// interceptors, package authz/grpcauthz, after authenticating the raw JWT
// with the workload's jwt_authn config), answers with opa-envoy-plugin
// compatible responses, names the deciding policy and rule, logs every
// decision and fails closed on anything it cannot evaluate. Served over
// mTLS (RegisterMTLS, ward serve's secure port) it decides only for a
// caller with a verified Ward workload certificate, and only about that
// certificate's namespace.
package extauthz
