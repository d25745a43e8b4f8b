// Package demo owns `ward demo`: a loopback mesh that shows Ward's mission
// end to end with no Kubernetes and no Envoy. It runs the real ward binary
// — `ward serve` on a bundled Istio config, `ward ca token create` and
// `ward agent` per workload — and proxyless grpc-go workloads (frontend →
// reviews v1/v2/v3 → ratings, each `ward demo workload`) that take their
// listeners, routes and mTLS from Ward over xDS and enforce authorisation
// through Ward's OPA-backed ext_authz. It prints each kind of call as it
// first happens (allowed or denied, with the deciding rule), shifts a
// canary live, and ends with `ward audit` of the running control plane.
// The end-to-end test runs the same harness.
package demo
