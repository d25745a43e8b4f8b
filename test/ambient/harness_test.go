package ambient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cluster is the test's machine-local "cluster": a fabric namespace with
// a bridge, and pods (namespaces) attached to it by veth pairs, with
// addresses from 10.254.0.0/24 that exist only inside these namespaces.
//
// Topology choice: in in-pod mode the node proxy's sockets live in each
// pod's namespace, so what crosses between pods is already the HBONE
// tunnel; a node-level namespace per node would add a routing hop but no
// behaviour under test. The two simulated nodes are the two proxies and
// the pods each one enrols.
type cluster struct {
	t      testing.TB
	prefix string
	fabric string
	n      int
	pids   map[string]int // the apps' process per pod name (benchmarks read their CPU)
}

// requireRoot skips unless network namespaces and iproute2 are available:
// the harness builds the pods with `ip`; the node proxy itself needs no
// binary (its capture is nf_tables and netlink from Go).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ambient e2e needs root to create network namespaces")
	}
	for _, tool := range []string{"ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				// As root in CI the install scripts must have provided it.
				t.Fatalf("ambient e2e needs %s (hack/install-iproute2.sh installs it): %v", tool, err)
			}
			t.Skipf("ambient e2e needs %s (hack/install-iproute2.sh installs it): %v", tool, err)
		}
	}
}

func newCluster(t testing.TB) *cluster {
	requireRoot(t)
	c := &cluster{t: t, prefix: fmt.Sprintf("wa%d", os.Getpid()%100000)}
	c.fabric = c.prefix + "-fab"
	t.Cleanup(func() { c.del(c.fabric) })
	if out, err := exec.Command("ip", "netns", "add", c.fabric).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	c.ip(c.fabric, "link", "add", "br0", "type", "bridge")
	c.ip(c.fabric, "link", "set", "br0", "up")
	c.ip(c.fabric, "link", "set", "lo", "up")
	return c
}

func (c *cluster) del(ns string) {
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		c.t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
	}
}

func (c *cluster) ip(ns string, args ...string) {
	c.t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		c.t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

// pod is one workload's network namespace.
type pod struct {
	name string // namespace name = WorkloadEntry name
	addr string // 10.254.0.x
	path string
}

// pod creates a namespace on the bridge with the next address, and a
// route for the service VIP range so clients can dial VIPs (capture takes
// them before they leave the pod).
func (c *cluster) pod(short string) pod {
	c.t.Helper()
	c.n++
	p := pod{name: c.prefix + "-" + short, addr: fmt.Sprintf("10.254.0.%d", 10+c.n)}
	p.path = filepath.Join("/var/run/netns", p.name)
	c.t.Cleanup(func() { c.del(p.name) })
	if out, err := exec.Command("ip", "netns", "add", p.name).CombinedOutput(); err != nil {
		c.t.Fatalf("ip netns add %s: %v: %s", p.name, err, out)
	}
	// No duplicate-address detection: link-local IPv6 is usable at once.
	if out, err := exec.Command("ip", "netns", "exec", p.name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0").CombinedOutput(); err != nil {
		c.t.Fatalf("sysctl in %s: %v: %s", p.name, err, out)
	}
	peer := fmt.Sprintf("v%s%d", c.prefix[2:], c.n) // ≤ 15 bytes
	c.ip(p.name, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", c.fabric)
	c.ip(c.fabric, "link", "set", peer, "master", "br0", "up")
	c.ip(p.name, "addr", "add", p.addr+"/24", "dev", "eth0")
	c.ip(p.name, "link", "set", "eth0", "up")
	c.ip(p.name, "link", "set", "lo", "up")
	c.ip(p.name, "route", "add", "10.254.100.0/24", "dev", "eth0")
	return p
}

// run starts unmodified applications inside p (this test binary in app
// mode under `ip netns exec`) and waits for them to listen.
func (c *cluster) run(p pod, apps string) {
	c.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", p.name, os.Args[0])
	cmd.Env = append(os.Environ(), envApp+"="+apps)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	if c.pids == nil {
		c.pids = map[string]int{}
	}
	c.pids[p.name] = cmd.Process.Pid // ip netns exec execs the app in place
	c.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			c.t.Fatalf("apps %s in %s: %s", apps, p.name, line)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("apps %s in %s did not start", apps, p.name)
	}
}

// dial connects from inside p as an application would: no mark, so the
// pod's capture rules apply.
func dial(ctx context.Context, p pod, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is retired
		target, err := os.Open(p.path)
		if err != nil {
			res <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{nil, err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// linkLocal returns p's IPv6 link-local address on eth0 as a dialable
// host with zone.
func (c *cluster) linkLocal(p pod) string {
	c.t.Helper()
	out, err := exec.Command("ip", "-n", p.name, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").CombinedOutput()
	if err != nil {
		c.t.Fatalf("ip addr in %s: %v: %s", p.name, err, out)
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			addr, _, _ := strings.Cut(f[i+1], "/")
			return "[" + addr + "%eth0]"
		}
	}
	c.t.Skipf("no IPv6 link-local address in %s: %s", p.name, out)
	return ""
}
