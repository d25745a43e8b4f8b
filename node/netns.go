package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mark is the socket mark on every connection the node proxy opens inside
// a workload's network namespace; the capture rules let marked traffic
// pass, so the proxy's own connections are never redirected back to it.
const Mark = 0x539

// netns is one network namespace, named by a path (/var/run/netns/NAME
// or /proc/PID/ns/net). Sockets are created inside it by switching the
// calling OS thread; once created they stay in it.
type netns struct{ path string }

// do runs fn on an OS thread switched into ns. If the thread cannot be
// switched back it is left locked, so Go retires it instead of reusing a
// thread in the wrong namespace.
func (ns netns) do(fn func() error) error {
	target, err := os.Open(ns.path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns.path, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: own namespace: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", ns.path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns %s: restore: %w", ns.path, err) // thread stays locked: retired
	}
	runtime.UnlockOSThread()
	return ferr
}

// listen opens a TCP listener inside ns.
func (ns netns) listen(addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.do(func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s in %s: %w", addr, ns.path, err)
	}
	return l, nil
}

// dial connects from inside ns; mark, when non-zero, is set on the socket
// (the proxy's own connections bypass capture).
func (ns netns) dial(ctx context.Context, addr string, mark int) (net.Conn, error) {
	d := net.Dialer{}
	if mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) }); err != nil {
				return err
			}
			return serr
		}
	}
	var conn net.Conn
	err := ns.do(func() error {
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}
