package ambient

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWardNodeCommand runs the real `ward node` binary for one node with
// two enrolled pods: it enrols both from a config directory, carries a's
// connection to b over HBONE (b's proxy logs a's identity), writes the
// decision log, and on SIGTERM exits cleanly leaving the redirect rules in
// place, so the workloads fail closed until a proxy serves them again.
func TestWardNodeCommand(t *testing.T) {
	c := newCluster(t)
	a, b := c.pod("ca"), c.pod("cb")
	c.run(b, "echo:9000")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mesh")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
	for _, p := range []struct {
		pod    pod
		ns, sa string
	}{{a, "frontend", "web"}, {b, "shop", "db"}} {
		yaml += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: " + p.pod.name + ", namespace: " + p.ns + "}\n" +
			"spec:\n  address: " + p.pod.addr + "\n  serviceAccount: " + p.sa + "\n  labels: {istio.io/dataplane-mode: ambient, ward.io/node: n1}\n"
	}
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ward")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wardmesh/ward/cmd/ward").CombinedOutput(); err != nil {
		t.Fatalf("build ward: %v\n%s", err, out)
	}
	caAddr, token, root := startServe(t, bin, cfg, filepath.Join(dir, "state"))
	nodeState := filepath.Join(dir, "node")
	args := []string{"node", "--name", "n1", "--config", cfg, "--ca-addr", caAddr, "--ca-root", root, "--state-dir", nodeState,
		"--log-level", "debug", "--decision-log", filepath.Join(dir, "decisions.jsonl")}
	cmd, lines, exited := startNode(t, bin, append(args, "--join-token-file", token)...)
	waitLog := func(groups ...[]string) { t.Helper(); waitLines(t, lines, groups...) }
	waitLog([]string{"node certificate issued", "spiffe://cluster.local/ns/ward-system/sa/ward-node/node/n1"},
		[]string{"workload enrolled", a.name}, []string{"workload enrolled", b.name})

	if got, err := exchange(t, a, b.addr+":9000", "through ward node"); err != nil || got != "through ward node" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	waitLog([]string{"inbound connection", "spiffe://cluster.local/ns/frontend/sa/web", "allowed=true"})
	if !strings.Contains(captureRules(t, b), "nat_prerouting: return redirect") {
		t.Fatal("no capture rules in b while ward node runs")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until the process exits
	}
	if err := <-exited; err != nil {
		t.Fatalf("ward node exit: %v", err)
	}
	exited <- nil // for the cleanup
	decisions, err := os.ReadFile(filepath.Join(dir, "decisions.jsonl"))
	if err != nil || !strings.Contains(string(decisions), `"source_principal":"spiffe://cluster.local/ns/frontend/sa/web"`) || !strings.Contains(string(decisions), `"allowed":true`) {
		t.Errorf("decision log lacks a's allowed connection (%v):\n%s", err, decisions)
	}
	// The rules stay after exit: b's STRICT application is not reachable
	// in plaintext while no proxy serves it (fail closed).
	if !strings.Contains(captureRules(t, b), "nat_prerouting: return redirect") {
		t.Error("capture rules removed on exit: the workload would be reachable around mTLS")
	}
	if got, err := exchange(t, a, b.addr+":9000", "no proxy"); err == nil || got != "" {
		t.Errorf("with ward node stopped, a reached b: %q, %v", got, err)
	}

	// A restart needs no new token: the node renews by the certificate it
	// saved in --state-dir (the join token is spent).
	_, lines, _ = startNode(t, bin, args...)
	waitLog([]string{"node certificate issued", "node/n1"}, []string{"workload enrolled", a.name}, []string{"workload enrolled", b.name})
	if got, err := exchange(t, a, b.addr+":9000", "after restart"); err != nil || got != "after restart" {
		t.Fatalf("after restart: echo = %q, %v", got, err)
	}
}

// startNode starts `ward node` with args; lines carries its log lines and
// exited its exit status. Cleanup kills it.
func startNode(t *testing.T, bin string, args ...string) (*exec.Cmd, chan string, chan error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test reads only what it waits for
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	return cmd, lines, exited
}

// waitLines waits until, for every group of strings, some line contains
// all of them (in any order of lines).
func waitLines(t *testing.T, lines chan string, groups ...[]string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	pending := groups
	for len(pending) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("ward node exited while waiting for %q", pending)
			}
			pending = slices.DeleteFunc(pending, func(g []string) bool {
				for _, w := range g {
					if !strings.Contains(l, w) {
						return false
					}
				}
				return true
			})
		case <-timeout:
			t.Fatalf("no log lines with %q", pending)
		}
	}
}

// startServe runs `ward serve` on the config directory with its
// certificate service on a free loopback port, waits until it accepts
// connections, and returns that address, a file holding a join token for
// node n1 and the trust bundle file: what an operator hands a node.
func startServe(t *testing.T, bin, cfg, state string) (addr, tokenFile, rootFile string) {
	t.Helper()
	addr, _, tokenFile, rootFile = startServeDebug(t, bin, cfg, state)
	return addr, tokenFile, rootFile
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// startServeDebug is startServe that also returns the debug address
// (/debug/..., for proxy-status and proxy-config).
func startServeDebug(t *testing.T, bin, cfg, state string) (addr, debugAddr, tokenFile, rootFile string) {
	t.Helper()
	addr, debugAddr = freeAddr(t), freeAddr(t)
	serve := exec.Command(bin, "serve", "--config", cfg, "--state", state, "--secure-addr", addr,
		"--debug-addr", debugAddr, "--xds-addr", "", "--authz-addr", "")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ward serve never listened on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a child process; no clock to inject
	}
	out := func(args ...string) []byte {
		b, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("ward %s: %v", strings.Join(args, " "), err)
		}
		return b
	}
	dir := filepath.Dir(state)
	tokenFile, rootFile = filepath.Join(dir, "node-token"), filepath.Join(dir, "root.pem")
	if err := os.WriteFile(tokenFile, out("ca", "token", "create", "--node", "n1", "--state", state), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootFile, out("ca", "bundle", "--state", state), 0o644); err != nil {
		t.Fatal(err)
	}
	return addr, debugAddr, tokenFile, rootFile
}
