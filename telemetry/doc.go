// Package telemetry translates Istio's Telemetry API into Envoy
// observability config: which Telemetry objects apply to a proxy (root
// namespace, namespace, workload, with Istio's precedence), the
// effective access logging and tracing per traffic side (client =
// outbound, server = inbound and gateways), and the Envoy access_log
// entries (file, gRPC ALS, OpenTelemetry; CEL filters) and HTTP
// connection manager tracing (OpenTelemetry) they produce. It is pure:
// providers come from the mesh config, collector clusters from the
// service registry in the snapshot.
package telemetry
