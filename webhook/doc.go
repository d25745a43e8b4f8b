// Package webhook owns Ward's Kubernetes admission webhooks (admission/v1):
// the mutating /inject endpoint that adds the Envoy proxy, `ward agent`,
// the traffic-redirection init container, the projected service-account
// token and the trust bundle to pods (Inject does the same offline for
// `ward inject`), and the validating /validate endpoint that checks Istio
// objects with exactly the file source's decoding and validation (package
// schema, through kube.DecodeObject). It also keeps the caBundle of Ward's
// webhook configurations equal to the CA's trust bundle, and serves with a
// certificate from Ward's own CA, renewed automatically.
package webhook
