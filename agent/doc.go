// Package agent owns Ward's workload agent: it generates the workload key
// locally, enrols with the CA (Kubernetes token or join token, then its own
// certificate for renewals), rotates at a fraction of the certificate's
// lifetime on an injected clock with backoff while the CA is unreachable,
// serves the identity over SDS, writes the files and the grpc xDS bootstrap
// proxyless gRPC needs. The Envoy sidecar bootstrap is rendered by
// agent/sidecar, apart, so that the agent (and the slim ward-agent binary)
// links no Envoy cluster or bootstrap protos; it reaches the CA through
// ca/caclient and names identities with mesh/identity for the same
// reason.
package agent
