// Package mesh owns Ward's model of the mesh: Istio config objects as typed
// Configs, the service registry derived from them (Service, Workload,
// Endpoint), proxies, SPIFFE identity helpers, and the immutable, indexed
// Snapshot that every translator reads.
//
// A Snapshot is built once by NewSnapshot and never changes afterwards;
// callers must treat every value reachable from it (including the protobuf
// specs) as read-only. Sources build a new Snapshot for every change.
package mesh
