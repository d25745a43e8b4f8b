// Package hbone implements HBONE, the tunnel protocol of Istio's ambient
// mode: mutual TLS 1.3 (ALPN h2) between node proxies, each carrying a
// workload's SPIFFE certificate, and one HTTP/2 CONNECT stream per proxied
// TCP connection whose authority is the destination workload's ip:port.
// The Server authenticates the caller against a trust bundle, asks a
// policy callback, dials the destination and splices; the Client dials a
// peer with the source workload's certificate and returns the tunnel as a
// net.Conn. Connections to one peer with one source identity share an
// HTTP/2 connection.
package hbone

import (
	"net/http"
	"time"
)

// Port is HBONE's well-known port.
const Port = 15008

// alpn is the only application protocol HBONE speaks.
const alpn = "h2"

// maxFrame is the largest DATA frame a peer may send us. Go's HTTP/2
// client gives every request body (every tunnel's upstream direction) a
// scratch buffer of min(peer's max frame size, 512 KiB) for its whole
// life: with Go's default 1 MiB that was 512 KiB per open connection
// (TestAmbientScale). 16 KiB, the protocol's default, keeps it at 16 KiB.
const maxFrame = 16 << 10

// http2Config sizes HBONE's HTTP/2: 16 KiB frames (maxFrame), flow-control
// windows near the 4 MiB maximum so one tunnel is not throttled to a
// 64 KiB window per round trip (the stream benchmark in test/ambient
// measures it), and a ping that detects a dead peer.
func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReadFrameSize:              maxFrame,
		MaxReceiveBufferPerConnection: 4<<20 - 1,
		MaxReceiveBufferPerStream:     4<<20 - 1,
		SendPingTimeout:               30 * time.Second,
		PingTimeout:                   15 * time.Second,
	}
}
