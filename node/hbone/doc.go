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

// TLS carries at most 16 KiB of plaintext per record, and Go's tls.Conn
// writes every record with its own syscall. An HTTP/2 DATA frame is a
// 9-byte header and its payload, written to the TLS connection in one
// piece: a 16 KiB payload makes a full record and a 9-byte one, two
// syscalls and two packets per frame. The tunnel writers therefore cut
// data into payloads that fill whole records exactly (upPayload,
// downPayload).
const (
	frameHeader = 9
	tlsRecord   = 16 << 10
)

// Dynamic record sizing is off on both ends (DynamicRecordSizingDisabled):
// crypto/tls otherwise sends the first 128 KiB of every connection in
// ~1 KiB records, to speed a browser's first paint over a slow-starting
// TCP connection. Between node proxies in a cluster that only multiplies
// the per-record cost (syscall, packet, AEAD call) of a new peer's first
// transfers; ztunnel's rustls does not size records dynamically either.

// maxFrame is the largest DATA frame the server lets a client send, and
// so upstream (caller → destination) frames are one record each. Go's
// HTTP/2 client gives every request body a scratch buffer of min(peer's
// max frame size, 512 KiB) for its whole life: with Go's default 1 MiB
// that was 512 KiB per open connection (TestAmbientScale). 16 KiB, the
// protocol's default, keeps it at 16 KiB.
const (
	maxFrame  = tlsRecord
	upPayload = maxFrame - frameHeader
)

// clientMaxFrame is the largest DATA frame the client accepts: downstream
// (destination → caller) frames carry four records each. The server holds
// no per-stream buffer of this size (the client's framer keeps one read
// buffer per connection), and fewer frames are fewer hand-offs between
// the handler, the server's write loop and its frame writer. A peer client
// that reads only 16 KiB frames (another HBONE implementation) gets
// correct frames of that size, each with a 9-byte record after it.
const (
	clientMaxFrame = 4 * tlsRecord
	downPayload    = clientMaxFrame - frameHeader
)

// http2Config sizes HBONE's HTTP/2: the largest frame this end reads,
// flow-control windows near the 4 MiB maximum so one tunnel is not
// throttled to a 64 KiB window per round trip (the stream benchmark in
// test/ambient measures it), and a ping that detects a dead peer. The
// connection window bounds what a peer can make this end buffer for all
// of a connection's tunnels together (TestSlowReaderBounded).
func http2Config(maxReadFrame int) *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReadFrameSize:              maxReadFrame,
		MaxReceiveBufferPerConnection: 4<<20 - 1,
		MaxReceiveBufferPerStream:     4<<20 - 1,
		SendPingTimeout:               30 * time.Second,
		PingTimeout:                   15 * time.Second,
	}
}
