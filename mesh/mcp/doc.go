// Package mcp encodes Istio config objects as Istio's MCP-over-xDS
// resources and back: each object is an istio.mcp.v1alpha1.Resource
// (metadata "<namespace>/<name>", labels, annotations, creation time;
// body = the istio.io/api spec as an Any) and each kind's xDS type URL is
// its collection, "<group>/<version>/<Kind>", as istiod serves and reads
// config over xDS. Ward's control plane serves node proxies this way and
// the node proxy decodes it into the same mesh.Snapshot its --config
// source builds (docs/ambient.md, "Node config over ADS").
package mcp
