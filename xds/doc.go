// Package xds owns Ward's xDS server: it turns each connected proxy's node
// into a mesh.Proxy, computes its resources with the pure translators of
// xds/translate, validates them, and serves them over ADS (state of the
// world and delta) with go-control-plane. It debounces config updates,
// recomputes only proxies whose inputs changed, bounds push concurrency,
// records ACK/NACK per proxy and type, exports Prometheus metrics and
// serves the config_dump, syncz and connections debug pages.
package xds
