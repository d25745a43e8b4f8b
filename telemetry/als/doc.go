// Package als is Ward's gRPC Access Log Service: it receives Envoy's
// StreamAccessLogs from proxies on the secure port, binds every stream to
// the identity in the caller's certificate (a proxy reports only for its
// own namespace), and folds the entries into a bounded store of call
// records and source→destination edges. It keeps no headers, query
// strings or bodies.
package als
