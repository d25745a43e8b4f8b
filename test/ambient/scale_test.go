package ambient

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
)

// TestAmbientScale measures one node proxy's memory with 100 enrolled
// workloads and 1,000 open connections between them (both ends of every
// tunnel are on this node, so it holds 1,000 outbound and 1,000 inbound
// halves). It takes a minute and many namespaces, so it runs only with
// WARD_AMBIENT_SCALE=1; it logs numbers (docs/benchmarks.md) and asserts
// only that every connection works.
func TestAmbientScale(t *testing.T) {
	if os.Getenv("WARD_AMBIENT_SCALE") == "" {
		t.Skip("set WARD_AMBIENT_SCALE=1 to measure 100 workloads and 1,000 connections")
	}
	c := newCluster(t)
	const workloads, conns = 100, 1000
	pods := make([]pod, workloads)
	var cfg strings.Builder
	for i := range pods {
		pods[i] = c.pod(fmt.Sprintf("s%d", i))
		fmt.Fprintf(&cfg, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s, namespace: ns%d}\nspec:\n  address: %s\n  serviceAccount: sa%d\n  labels: {app: w%d, istio.io/dataplane-mode: ambient, ward.io/node: n1}\n---\n",
			pods[i].name, i%10, pods[i].addr, i, i)
	}
	server := pods[0]
	c.run(server, "echo:9000")
	snap := snapshot(t, cfg.String())
	iss := newControlPlane(t, func() *mesh.Snapshot { return snap }).issuer(t, "n1")
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	baseG := runtime.NumGoroutine()
	baseRSS := rss(t)
	p, err := node.New(node.Config{Node: "n1", TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local"),
		Snapshot: snap, Issuer: iss,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	enrolTime := time.Since(start)
	enrolled := heap(t, base)
	enrolledStack, enrolledRSS := stacks(), rss(t)

	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range conns {
		from := pods[1+i%(workloads-1)]
		conn, err := dial(ctx, from, server.addr+":9000")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, conn)
		conn.SetDeadline(time.Now().Add(time.Minute))
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
			t.Fatalf("connection %d echo: %v", i, err)
		}
	}
	loaded := heap(t, base)
	loadedStack, loadedRSS := stacks(), rss(t)
	t.Logf("enrolled %d workloads in %v: +%.1f MiB heap in use, %d goroutines", workloads, enrolTime.Round(time.Millisecond), enrolled, runtime.NumGoroutine()-baseG)
	t.Logf("with %d open connections (both ends on this proxy): +%.1f MiB heap in use (%.1f KiB per connection), %d goroutines",
		conns, loaded, (loaded-enrolled)*1024/conns, runtime.NumGoroutine()-baseG)
	t.Logf("goroutine stacks %.1f MiB (%.1f KiB per connection); process RSS %.1f MiB (%.1f MiB before the proxy, %.1f after enrolling)",
		loadedStack-enrolledStack, (loadedStack-enrolledStack)*1024/conns, loadedRSS, baseRSS, enrolledRSS)
}

// heap returns the heap in use above base, in MiB, after a GC. It counts
// the whole test process (proxy plus the test's client sockets).
func heap(t *testing.T, base runtime.MemStats) float64 {
	t.Helper()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(int64(m.HeapInuse)-int64(base.HeapInuse)) / (1 << 20)
}

// stacks is the goroutine stack memory in use, in MiB.
func stacks() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.StackInuse) / (1 << 20)
}

// rss is the process's resident set (VmRSS), in MiB: the whole test
// process, proxy, test client sockets and CA included.
func rss(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
