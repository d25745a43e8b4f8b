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
	return selfCPU(tb) + procCPU(tb, w.c.pids[p.to(w).name])
}

// selfCPU is this process's user+system time so far.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
// does; node/hbone's BenchmarkDial measures what a fresh handshake adds).
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

// BenchmarkRate measures CPU the way Istio publishes ztunnel's (0.06 vCPU
// per 1,000 requests per second): 1 KiB requests, each echoed, at 1,000
// per second on one warm connection; run it with -benchtime 5000x for
// five seconds. vCPU is this process's CPU seconds per wall second (the
// client, and on the hbone path both node proxies), vCPU/krps the same
// per 1,000 requests actually sent (a loaded machine falls behind the
// pace): the two proxies' share is hbone minus direct, each proxy's half
// of that.
func BenchmarkRate(b *testing.B) {
	w := newWorld(b)
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			conn, err := dial(ctxT(b), p.from(w), p.server(w)+":9000")
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req, resp := bytes.Repeat([]byte("x"), 1<<10), make([]byte, 1<<10)
			tick := time.NewTicker(time.Millisecond) // the load's pace, not synchronisation
			defer tick.Stop()
			lat := make([]time.Duration, 0, b.N)
			cpu, start := selfCPU(b), time.Now()
			b.ResetTimer()
			for range b.N {
				<-tick.C
				t0 := time.Now()
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, resp); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			wall := time.Since(start)
			b.ReportMetric(float64(selfCPU(b)-cpu)/float64(wall), "vCPU")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "rps") // under 1,000 when a busy machine delays the loop
			b.ReportMetric(float64(selfCPU(b)-cpu)/float64(time.Second)/(float64(b.N)/1000), "vCPU/krps")
			reportPercentiles(b, lat)
		})
	}
}
