// Package xds owns Ward's xDS server: it turns each connected proxy's node
// into a mesh.Proxy, computes its resources with the pure translators of
// xds/translate, validates them, and serves them over ADS (state of the
// world and delta) with go-control-plane. Every stream has its own proxy
// state (never shared by node id); on the secure port a stream must
// present a Ward workload certificate and serves only that identity. It
// debounces config updates, recomputes only proxies whose inputs changed,
// applies per-stream back-pressure and stream, connection and node-size
// limits, encodes each shared config side once and sends it to every
// proxy holding it as the same bytes (Server.ServerOptions' codec, SotW and
// delta), records ACK/NACK per stream and type, exports Prometheus metrics
// and serves the config_dump, syncz and connections debug pages, scoped to
// the caller's namespace.
package xds
