// Package benchmesh owns the Istio-style benchmark meshes Ward's xDS
// benchmarks and load harness run on: N services with two ports and three
// subsets each, their WorkloadEntries, DestinationRules and weighted
// VirtualServices, optional namespace Sidecars, and a gateway with one
// host per service — and the shapes of Istio's pilot benchmarks (Shape:
// http, virtualservice, serviceentry-workloadentry, a gateway with 1,000
// servers), rendered by its own generator. It renders them as Istio YAML
// or as mesh configs.
package benchmesh
