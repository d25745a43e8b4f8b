package ambient

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The benchmarks compare the same veth/bridge path with and without two
// node proxies: direct is a non-enrolled client to a non-enrolled server;
// hbone is pod a (node-1) to db (node-2) through both proxies. Results
// and the machine they came from are in docs/benchmarks.md.

type path struct {
	name   string
	from   func(*world) pod
	server func(*world) string
}

var paths = []path{
	{"direct", func(w *world) pod { return w.plain }, func(w *world) string { return w.x.addr }},
	{"hbone", func(w *world) pod { return w.a }, func(w *world) string { return w.b.addr }},
}

// BenchmarkStream: one TCP stream's throughput (64 KiB writes to a sink
// that counts them).
func BenchmarkStream(b *testing.B) {
	w := newWorld(b)
	chunk := make([]byte, 64<<10)
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			conn, err := dial(ctxT(b), p.from(w), p.server(w)+":9100")
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			conn.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(conn)
			b.StopTimer()
			if n, _ := strconv.Atoi(string(got)); err != nil || n != b.N*len(chunk) {
				b.Fatalf("sink counted %q, want %d (%v)", got, b.N*len(chunk), err)
			}
		})
	}
}

// BenchmarkConnect: a new connection and one echoed byte (the HBONE path
// reuses the pooled mTLS connection between the two pods, as ztunnel
// does; see BenchmarkColdConnect for a fresh handshake).
func BenchmarkConnect(b *testing.B) {
	w := newWorld(b)
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				echoOnce(b, p.from(w), p.server(w)+":9000")
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkRequest: a one-byte request and its echo on a warm connection.
func BenchmarkRequest(b *testing.B) {
	w := newWorld(b)
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			conn, err := dial(ctxT(b), p.from(w), p.server(w)+":9000")
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

func echoOnce(b *testing.B, from pod, addr string) {
	conn, err := dial(ctxT(b), from, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	one := []byte{'x'}
	if _, err := conn.Write(one); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(conn, one); err != nil {
		b.Fatal(fmt.Errorf("echo: %w", err))
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
