// Package ambient tests `ward node` end to end on real network
// namespaces: pods are namespaces on a shared bridge, their applications
// are unmodified processes started inside them, and one node proxy per
// simulated node captures their traffic and carries it over HBONE. It
// needs root and iproute2 (the harness builds the pods with ip; the node
// proxy itself needs no binary) and skips, saying which, without them. It holds only tests.
package ambient
