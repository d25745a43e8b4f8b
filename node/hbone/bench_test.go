package hbone

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The benchmarks here run in one process over loopback and need no root:
// a tunnel client and server (the two proxy hops of ambient mode without
// the plaintext legs) and the AES-GCM cost that bounds any HBONE hop.
// test/ambient measures the whole path; docs/benchmarks.md has results.

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sink is a TCP backend that reads to EOF and reports the count.
func sink(tb testing.TB) (netip.AddrPort, <-chan int64) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	counts := make(chan int64, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				counts <- drain(c)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String()), counts
}

// drain reads r to EOF or an error in 256 KiB reads, as a proxy's bulk
// copy does (io.Copy to io.Discard would read 8 KiB at a time: Discard's
// ReadFrom uses its own buffer, and each small read of a tunnel costs a
// WINDOW_UPDATE).
func drain(r io.Reader) int64 {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err != nil {
			return total
		}
	}
}

// source is a TCP backend that writes n bytes and closes.
func source(tb testing.TB, n int64) netip.AddrPort {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		chunk := make([]byte, 64<<10)
		for n > 0 {
			w, err := c.Write(chunk[:min(int64(len(chunk)), n)])
			if err != nil {
				return
			}
			n -= int64(w)
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// BenchmarkTunnel moves one stream through a tunnel each way: up is the
// caller writing (the request body: client → server → sink), down the
// destination writing (the response body). cpu-ns/B is the whole
// process's CPU (both hops, the backend and the kernel's TCP) per byte.
func BenchmarkTunnel(b *testing.B) {
	c := newCA(b, "cluster.local")
	src, _ := c.svid(b, "a", "client")
	chunk := make([]byte, 64<<10)
	b.Run("up", func(b *testing.B) {
		f := serve(b, c, nil)
		dst, counts := sink(b)
		conn, err := client(b, c.bundles()).Dial(ctxT(b), Target{Peer: f.addr, Dest: dst, Source: src})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.SetBytes(int64(len(chunk)))
		cpu := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			if _, err := conn.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		conn.(interface{ CloseWrite() error }).CloseWrite()
		if n := <-counts; n != int64(b.N*len(chunk)) {
			b.Fatalf("sink counted %d, want %d", n, b.N*len(chunk))
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*len(chunk)), "cpu-ns/B")
	})
	b.Run("down", func(b *testing.B) {
		f := serve(b, c, nil)
		total := int64(b.N) * int64(len(chunk))
		dst := source(b, total)
		conn, err := client(b, c.bundles()).Dial(ctxT(b), Target{Peer: f.addr, Dest: dst, Source: src})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.SetBytes(int64(len(chunk)))
		cpu := cpuTime(b)
		b.ResetTimer()
		n := drain(conn)
		b.StopTimer()
		if n != total {
			b.Fatalf("read %d, want %d", n, total)
		}
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(total), "cpu-ns/B")
	})
}

// BenchmarkRecordCrypto is the AES-128-GCM work of one HBONE hop per
// 16 KiB TLS record (TLS 1.3 negotiates AES-128-GCM first where both ends
// have AES hardware): seal on the sending proxy, open on the receiving
// one. Its ns/B is the floor of a hop's CPU per byte.
func BenchmarkRecordCrypto(b *testing.B) {
	for _, op := range []string{"seal", "open"} {
		b.Run(op, func(b *testing.B) {
			block, err := aes.NewCipher(make([]byte, 16))
			if err != nil {
				b.Fatal(err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, aead.NonceSize())
			plain := make([]byte, 16<<10)
			sealed := aead.Seal(nil, nonce, plain, nil)
			out := make([]byte, 0, len(sealed))
			b.SetBytes(int64(len(plain)))
			for range b.N {
				if op == "seal" {
					out = aead.Seal(out[:0], nonce, plain, nil)
				} else if out, err = aead.Open(out[:0], nonce, sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDial is the latency one tunnel adds to a new connection (both
// HBONE ends in this process over loopback, plus a one-byte echo):
// pooled opens a CONNECT stream on the pooled mTLS connection, as a new
// connection between two workloads that have talked before does;
// handshake dials a new mTLS connection first (a fresh Client each time:
// TCP, TLS 1.3 with P-256 certificates both ways, SVID verification,
// HTTP/2 preface and settings). The direct row is the same echo over a
// plain TCP connection, to subtract.
func BenchmarkDial(b *testing.B) {
	c := newCA(b, "cluster.local")
	src, _ := c.svid(b, "a", "client")
	f := serve(b, c, noTunnelLog)
	backend := echo(b)
	pooled := client(b, c.bundles())
	cases := []struct {
		name string
		dial func() (net.Conn, func())
	}{
		{"direct", func() (net.Conn, func()) {
			conn, err := net.Dial("tcp", backend.String())
			if err != nil {
				b.Fatal(err)
			}
			return conn, func() {}
		}},
		{"pooled", func() (net.Conn, func()) {
			conn, err := pooled.Dial(ctxT(b), Target{Peer: f.addr, Dest: backend, Source: src})
			if err != nil {
				b.Fatal(err)
			}
			return conn, func() {}
		}},
		{"handshake", func() (net.Conn, func()) {
			cl, err := NewClient(ClientConfig{Bundles: c.bundles()})
			if err != nil {
				b.Fatal(err)
			}
			conn, err := cl.Dial(ctxT(b), Target{Peer: f.addr, Dest: backend, Source: src})
			if err != nil {
				b.Fatal(err)
			}
			return conn, func() { cl.Close() }
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			one := []byte{'x'}
			for range b.N {
				start := time.Now()
				conn, done := tc.dial()
				if _, err := conn.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, one); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				conn.Close()
				done()
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkRoundTrip is a one-byte request and its echo on a warm tunnel
// (direct: on a warm TCP connection).
func BenchmarkRoundTrip(b *testing.B) {
	c := newCA(b, "cluster.local")
	src, _ := c.svid(b, "a", "client")
	f := serve(b, c, noTunnelLog)
	backend := echo(b)
	for _, name := range []string{"direct", "tunnel"} {
		b.Run(name, func(b *testing.B) {
			var conn net.Conn
			var err error
			if name == "direct" {
				conn, err = net.Dial("tcp", backend.String())
			} else {
				conn, err = client(b, c.bundles()).Dial(ctxT(b), Target{Peer: f.addr, Dest: backend, Source: src})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			one := []byte{'x'}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := conn.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, one); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

// noTunnelLog drops the fixture's per-tunnel record (a buffered channel
// the benchmarks would fill).
func noTunnelLog(cfg *ServerConfig) { cfg.OnTunnel = nil }

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkTLSStream is crypto/tls alone: one TLS 1.3 stream (the HBONE
// certificates and cipher negotiation) over an in-memory pipe, 64 KiB
// writes, no sockets. cpu-ns/B is sealing, opening, record framing and
// the pipe's copies: the TLS share of one hop, a lower bound on what the
// two proxies add per byte beyond the kernel's TCP work.
func BenchmarkTLSStream(b *testing.B) {
	c := newCA(b, "cluster.local")
	srvCert, _ := c.svid(b, "dst", "server")
	cliCert, _ := c.svid(b, "a", "client")
	s := &Server{cfg: ServerConfig{Certificate: func(netip.AddrPort) (*tls.Certificate, error) { return srvCert, nil },
		Bundles: c.bundles(), Now: time.Now}}
	cl := &Client{cfg: ClientConfig{Bundles: c.bundles(), Now: time.Now}}
	a, z := net.Pipe()
	srv := tls.Server(z, s.tlsConfig())
	cli := tls.Client(a, cl.tlsConfig(Target{Source: cliCert}))
	defer srv.Close()
	defer cli.Close()
	got := make(chan int64, 1)
	go func() { got <- drain(srv) }()
	if err := cli.HandshakeContext(ctxT(b)); err != nil {
		b.Fatal(err)
	}
	if cs := cli.ConnectionState(); cs.CipherSuite != tls.TLS_AES_128_GCM_SHA256 {
		b.Logf("negotiated %s", tls.CipherSuiteName(cs.CipherSuite))
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	cpu := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	cli.Close()
	if n := <-got; n != int64(b.N*len(chunk)) {
		b.Fatalf("read %d, want %d", n, b.N*len(chunk))
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*len(chunk)), "cpu-ns/B")
}
