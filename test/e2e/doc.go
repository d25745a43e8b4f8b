// Package e2e holds Ward's end-to-end tests: the real `ward` binary and real
// grpc-go xDS clients and servers, all on 127.0.0.1.
package e2e
