package ambient

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The benchmarks compare the same veth/bridge path with and without two
// node proxies: direct is a non-enrolled client to a non-enrolled server;
// hbone is pod a (node-1) to db (node-2) through both proxies. Results
// and the machine they came from are in docs/benchmarks.md.

type path struct {
	name string
	from func(*world) pod
	to   func(*world) pod
}

func (p path) server(w *world) string { return p.to(w).addr }

var paths = []path{
	{"direct", func(w *world) pod { return w.plain }, func(w *world) pod { return w.x }},
	{"hbone", func(w *world) pod { return w.a }, func(w *world) pod { return w.b }},
}

// cpu is the CPU time used so far by this process (the client and both
// node proxies) and by the server pod's apps process.
func (p path) cpu(tb testing.TB, w *world) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + procCPU(tb, w.c.pids[p.to(w).name])
}

// procCPU reads a process's user+system time from /proc/<pid>/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux
// everywhere Go runs).
const clockTicks = 100

// BenchmarkStream: one TCP stream's throughput (64 KiB writes to a sink
// that counts them). cpu-ns/B is the CPU of the whole path per byte:
// client, node proxies and sink, user and kernel (the sink's is read at
// 10 ms resolution, so use -benchtime of a few seconds).
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
			cpu := p.cpu(b, w)
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			conn.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(conn)
			b.StopTimer()
			b.ReportMetric(float64(p.cpu(b, w)-cpu)/float64(b.N*len(chunk)), "cpu-ns/B")
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
