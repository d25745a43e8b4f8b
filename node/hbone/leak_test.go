package hbone

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestNoGoroutineLeak: after tunnels close, the client closes and Serve
// returns, nothing of the server or client is left running.
func TestNoGoroutineLeak(t *testing.T) {
	c := newCA(t, "cluster.local")
	backend := echo(t)
	srvCert, _ := c.svid(t, "dst", "server")
	src, _ := c.svid(t, "a", "client")
	before := runtime.NumGoroutine()

	s, err := NewServer(ServerConfig{
		Certificate: func(netip.AddrPort) (*tls.Certificate, error) { return srvCert, nil },
		Bundles:     c.bundles(),
		Authorize:   func(context.Context, Request) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	cl, err := NewClient(ClientConfig{Bundles: c.bundles()})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		conn, err := cl.Dial(ctxT(t), Target{Peer: netip.MustParseAddrPort(l.Addr().String()), Dest: backend, Source: src})
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("x"))
		io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	cl.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left (had %d):\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval of a bounded wait
	}
}
