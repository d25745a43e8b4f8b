// Package ads is the node proxy's delta ADS client: it subscribes to the
// config collections `ward serve` serves node proxies (mesh/mcp), keeps
// the last good state of each, builds a mesh.Snapshot from them once
// every collection has arrived, ACKs what it applied and NACKs — naming
// the resource — what it could not decode or apply, keeping the previous
// state, and reconnects with backoff, resuming from the versions it holds.
package ads
