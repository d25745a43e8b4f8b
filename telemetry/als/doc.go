// Package als is Ward's gRPC Access Log Service: it receives Envoy's
// StreamAccessLogs from proxies on the secure port, binds every stream to
// the identity in the caller's certificate (a proxy reports only for its
// own namespace), and folds the entries into a bounded store of call
// records and source→destination edges, and counts them in Istio's
// standard metrics with Istio's labels (Metrics). Of the headers it reads
// only the request's content-type and the response's grpc-status (for
// request_protocol and grpc_response_status); it keeps no headers, query
// strings or bodies.
package als
