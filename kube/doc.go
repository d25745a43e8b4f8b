// Package kube is Ward's Kubernetes config source and its cluster-side
// state. It watches Istio CRDs (security and networking, v1), Services,
// EndpointSlices, Pods, Namespaces and Ward's MeshConfig ConfigMap through
// client-go informers and publishes the same mesh.Snapshot as the file
// source: Istio objects are decoded and validated by package schema,
// Services become ServiceEntries and Pods WorkloadEntries (identity =
// namespace + service account). Rejected objects are reported on their
// status conditions.
//
// It also holds what the CA needs from the cluster: a Secret-backed
// ca.Store, root creation under client-go leader election (a Lease) so
// replicas never race, the trust-bundle ConfigMap kept in every namespace,
// and a TokenReview-based ca.TokenReviewer that also requires the token's
// pod to exist.
package kube
