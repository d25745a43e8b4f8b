package hbone

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowReaderBounded: a destination that does not read makes the
// caller's writes block instead of making the proxies buffer. The
// destination is an in-memory pipe (no kernel socket buffers), so what
// the caller has written and the destination not read is held by the two
// HBONE ends: it must stay within the stream window plus the copy and
// frame buffers, while the caller tries to write four times that. Once
// the destination reads, everything arrives.
func TestSlowReaderBounded(t *testing.T) {
	c := newCA(t, "cluster.local")
	dest := make(chan net.Conn, 1)
	f := serve(t, c, func(cfg *ServerConfig) {
		cfg.Dial = func(context.Context, Request) (net.Conn, error) {
			a, b := net.Pipe()
			dest <- b
			return a, nil
		}
	})
	src, _ := c.svid(t, "a", "client")
	conn, err := client(t, c.bundles()).Dial(ctxT(t), Target{Peer: f.addr, Dest: netip.MustParseAddrPort("127.0.0.1:9"), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := <-dest
	defer d.Close()

	// The stream window, the server's copy buffer (the large one once a
	// read fills the small), the client's request-body scratch buffer,
	// and one write in progress.
	const bound = 4<<20 + largeBuffer + maxFrame + 64<<10
	const total = 4 * bound
	var written atomic.Int64
	full, over, werr := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for written.Load() < total {
			n, err := conn.Write(chunk[:min(len(chunk), int(total-written.Load()))])
			w := written.Add(int64(n))
			if err != nil {
				werr <- err
				return
			}
			if w-int64(n) < 4<<20 && w >= 4<<20 {
				close(full) // the window's worth: the proxies accepted it
			}
			if w-int64(n) <= bound && w > bound {
				close(over)
			}
		}
		werr <- conn.(interface{ CloseWrite() error }).CloseWrite()
	}()
	select {
	case <-full:
	case err := <-werr:
		t.Fatalf("write: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("caller wrote only %d bytes into a stalled tunnel; want the 4 MiB window", written.Load())
	}
	// An absence needs a window: a proxy that buffered without bound would
	// take the remaining 12 MiB in well under this.
	select {
	case <-over:
		t.Fatalf("caller wrote %d bytes to a destination that read none; want at most %d", written.Load(), bound)
	case <-time.After(300 * time.Millisecond):
	}
	n, err := io.Copy(io.Discard, d)
	if err != nil || n != total {
		t.Fatalf("destination read %d, %v; want %d", n, err, total)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
}
