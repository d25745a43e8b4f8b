package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/wardmesh/ward/mesh"
)

// TestDialAppFallsBackWhenTransparentRefused: where the kernel refuses
// IP_TRANSPARENT (here a seccomp filter, as a restrictive runtime profile
// would), the application is still reached, from the pod's own address;
// the proxy warns once per pod and counts every such connection.
func TestDialAppFallsBackWhenTransparentRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace and a seccomp filter on one thread")
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the filter below reads setsockopt's arguments as on amd64/arm64")
	}
	done := make(chan error, 1)
	var logs bytes.Buffer
	m, _ := newMetrics(nil)
	pd := &pod{
		p: &Proxy{cfg: Config{Log: slog.New(slog.NewTextHandler(&logs, nil))}, metrics: m},
		w: &mesh.Workload{Source: mesh.Key{Namespace: "shop", Name: "db"}, Namespace: "shop", Name: "db"},
	}
	go func() {
		// This thread gets its own namespace and the filter and is never
		// unlocked: Go retires it when the goroutine ends.
		runtime.LockOSThread()
		done <- dialOnFilteredThread(pd)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dials did not finish")
	}
	if n := strings.Count(logs.String(), "cannot preserve the caller's address"); n != 1 {
		t.Errorf("%d warnings for the pod, want 1:\n%s", n, logs.String())
	}
	var got dto.Metric
	if err := m.opaque.WithLabelValues("shop").Write(&got); err != nil || got.GetCounter().GetValue() != 2 {
		t.Errorf("ward_node_source_not_preserved_total{namespace=shop} = %v (%v), want 2", got.GetCounter().GetValue(), err)
	}
}

// dialOnFilteredThread runs on a locked thread: a fresh network namespace
// with lo up and an app on 127.0.0.1, then the filter, then two dials from
// a caller's address, which must fall back to the proxy's own.
func dialOnFilteredThread(pd *pod) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	path := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	lo, err := netlink.LinkByName("lo") // this thread's namespace
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	pd.ns = netns{path}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	if err := refuseTransparent(); err != nil {
		return err
	}
	dst := netip.MustParseAddrPort(l.Addr().String())
	for range 2 {
		c, err := pd.dialApp(context.Background(), netip.MustParseAddr("10.254.0.99"), dst)
		if err != nil {
			return fmt.Errorf("dial app: %w", err)
		}
		c.Close()
		s, err := l.Accept()
		if err != nil {
			return err
		}
		s.Close()
		if host, _, _ := net.SplitHostPort(s.RemoteAddr().String()); host != "127.0.0.1" {
			return fmt.Errorf("app saw %s, want the fallback from 127.0.0.1", s.RemoteAddr())
		}
	}
	return nil
}

// refuseTransparent makes setsockopt(SOL_IP, IP_TRANSPARENT) fail with
// EPERM on the calling thread only (seccomp without TSYNC).
func refuseTransparent() error {
	const (
		nr, level, name = 0, 24, 32 // seccomp_data offsets: nr, args[1], args[2] (low words)
		ld              = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq             = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret             = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		{Code: ld, K: nr},
		{Code: jeq, K: unix.SYS_SETSOCKOPT, Jf: 5},
		{Code: ld, K: level},
		{Code: jeq, K: unix.SOL_IP, Jf: 3},
		{Code: ld, K: name},
		{Code: jeq, K: unix.IP_TRANSPARENT, Jf: 1},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
