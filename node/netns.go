package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	d := net.Dialer{Control: sockopts(mark, false)}
	return ns.dialWith(ctx, &d, "tcp", addr)
}

// dialFrom connects from inside ns with the proxy's mark from src, an
// address that need not be local: the socket is IP_TRANSPARENT, so the
// application sees src as its peer (ztunnel's source-IP preservation).
// The capture rules route the replies back to this socket. When the
// kernel refuses IP_TRANSPARENT (no CAP_NET_ADMIN or CAP_NET_RAW) the
// error is a *transparentError.
func (ns netns) dialFrom(ctx context.Context, src netip.Addr, addr string) (net.Conn, error) {
	d := net.Dialer{
		Control:   sockopts(Mark, true),
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, // port 0: the caller's port may still be in the conntrack table
	}
	return ns.dialWith(ctx, &d, "tcp4", addr)
}

func (ns netns) dialWith(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.do(func() error {
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// transparentError is a refused IP_TRANSPARENT: the proxy cannot connect
// from the caller's address.
type transparentError struct{ Err error }

func (e *transparentError) Error() string { return "set IP_TRANSPARENT: " + e.Err.Error() }
func (e *transparentError) Unwrap() error { return e.Err }

// sockopts sets mark (when non-zero) and, with transparent, IP_TRANSPARENT
// on a socket before it is bound.
func sockopts(mark int, transparent bool) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if mark != 0 {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark); serr != nil {
					return
				}
			}
			if transparent {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
					serr = &transparentError{err}
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
