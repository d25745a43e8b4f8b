// Package sds owns Ward's SDS server: go-control-plane's secret discovery
// service (state of the world and delta) serving a workload's certificate
// ("default") and trust bundle ("ROOTCA", plus the SPIRE-compatible
// "spiffe://<trust-domain>" and "ALL") to Envoy over a Unix socket, and
// pushing every rotation and bundle change on the open streams.
package sds
