// Package ca owns Ward's certificate authority: the persisted self-signed
// root (or an Istio-style plug-in intermediate from a cacerts directory),
// SPIFFE X.509-SVID issuance for workloads (template, sign and validate as
// separate steps), the Istio-compatible certificate-signing gRPC service with
// its caller authenticators (mesh client certificate, Kubernetes TokenReview,
// one-time join tokens), node-scoped issuance to ambient node proxies
// (Istio's ImpersonatedIdentity, checked against where workloads are
// placed), the limits that bound what callers may cost (global
// rate and concurrency, per identity, per source), the identities reserved
// for the control plane, root rotation with overlap (requested rotations are
// durable across a crash), the trust bundle, and a small client that agents
// use to request certificates.
package ca
