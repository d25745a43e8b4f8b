package redirect_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lab is two network namespaces joined by a veth pair: "pod", where the
// capture is installed, and "peer", the rest of the world. Addresses
// exist only inside them: pod 10.253.0.1 and fd00:253::1; peer
// 10.253.0.2, 10.253.0.3, fd00:253::2 and fd00:253::3.
type lab struct {
	pod, peer string // paths under /run/netns
}

// family is one IP version's addresses in the lab.
type family struct {
	name                    string
	pod, peer, peer2, local string
}

var families = []family{
	{"ipv4", "10.253.0.1", "10.253.0.2", "10.253.0.3", "127.0.0.1"},
	{"ipv6", "fd00:253::1", "fd00:253::2", "fd00:253::3", "::1"},
}

func (f family) at(host string, port int) string { return net.JoinHostPort(host, fmt.Sprint(port)) }

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and installs nf_tables rules")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to build the test namespaces")
	}
}

func newLab(t *testing.T) *lab {
	needRoot(t)
	id := fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.N(1<<16))
	pod, peer := "ward-redirect-pod-"+id, "ward-redirect-peer-"+id
	for _, ns := range []string{pod, peer} {
		ipcmd(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	vp, vq := "wrp"+id, "wrq"+id // at most 12 characters (IFNAMSIZ is 16)
	ipcmd(t, "-n", pod, "link", "add", vp, "type", "veth", "peer", "name", vq, "netns", peer)
	ipcmd(t, "-n", pod, "addr", "add", "10.253.0.1/24", "dev", vp)
	ipcmd(t, "-n", pod, "addr", "add", "fd00:253::1/64", "dev", vp, "nodad")
	for _, a := range []string{"10.253.0.2/24", "10.253.0.3/24"} {
		ipcmd(t, "-n", peer, "addr", "add", a, "dev", vq)
	}
	for _, a := range []string{"fd00:253::2/64", "fd00:253::3/64"} {
		ipcmd(t, "-n", peer, "addr", "add", a, "dev", vq, "nodad")
	}
	for ns, dev := range map[string]string{pod: vp, peer: vq} {
		ipcmd(t, "-n", ns, "link", "set", "lo", "up")
		ipcmd(t, "-n", ns, "link", "set", dev, "up")
	}
	return &lab{pod: "/run/netns/" + pod, peer: "/run/netns/" + peer}
}

func ipcmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on an OS thread moved into the namespace at path. The
// thread is never handed back to the scheduler: it ends with its
// goroutine, so no other goroutine ever runs in the namespace by
// accident. Sockets fn opens and processes it starts stay in the
// namespace.
func inNS(t *testing.T, path string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// serve listens on addr in the namespace and answers every connection
// with "<name> <destination>": for a capture listener (orig) the
// connection's original destination (SO_ORIGINAL_DST), else the address
// it reached.
func serve(t *testing.T, ns, network, addr, name string, orig bool) {
	t.Helper()
	var l net.Listener
	inNS(t, ns, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			dst, err := netip.ParseAddrPort(c.LocalAddr().String())
			if orig {
				dst, err = originalDst(c.(*net.TCPConn))
			}
			if err != nil {
				fmt.Fprintf(c, "%s error: %v", name, err)
			} else {
				fmt.Fprintf(c, "%s %s", name, dst)
			}
			c.Close()
		}
	}()
}

// originalDst reads SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST
// (IPv6; same number) of a redirected connection.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v4 := c.LocalAddr().(*net.TCPAddr).IP.To4() != nil
	var buf [28]byte // sockaddr_in6; a sockaddr_in fits
	size, level := uint32(16), unix.SOL_IP
	if !v4 {
		size, level = 28, unix.SOL_IPV6
	}
	var errno syscall.Errno
	err = raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), unix.SO_ORIGINAL_DST,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", err)
	}
	port := binary.BigEndian.Uint16(buf[2:4])
	if v4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port), nil
}

// dialFrom connects from the test process (root) inside ns.
func dialFrom(t *testing.T, ns, addr string) string {
	t.Helper()
	var c net.Conn
	inNS(t, ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}

// dialAs connects from a new process with uid and gid inside ns (the
// child is forked from a thread in ns and so starts there).
func dialAs(t *testing.T, ns string, uid, gid uint32, addr string) string {
	t.Helper()
	return runAs(t, ns, uid, gid, helperEnv+"="+addr)
}

// runAs runs the helper with uid and gid inside ns, env added.
func runAs(t *testing.T, ns string, uid, gid uint32, env ...string) string {
	t.Helper()
	cmd := exec.Command(helper(t))
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	inNS(t, ns, cmd.Start)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "error: " + strings.TrimSpace(stderr.String())
		}
		t.Fatalf("helper as uid %d: %v", uid, err)
	}
	return out.String()
}

var (
	helperOnce sync.Once
	helperDir  string
	helperPath string
	helperErr  error
)

// helper is a copy of the test binary that any uid may execute (the go
// tool builds it in a directory only root can enter).
func helper(t *testing.T) string {
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		b, err := os.ReadFile(self)
		if err != nil {
			helperErr = err
			return
		}
		helperDir, helperErr = os.MkdirTemp("", "ward-redirect-helper")
		if helperErr != nil {
			return
		}
		helperPath = filepath.Join(helperDir, "dial")
		if helperErr = os.Chmod(helperDir, 0o755); helperErr == nil {
			helperErr = os.WriteFile(helperPath, b, 0o755)
		}
	})
	if helperErr != nil {
		t.Fatalf("helper binary: %v", helperErr)
	}
	return helperPath
}
