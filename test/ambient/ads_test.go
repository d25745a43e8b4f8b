package ambient

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWardNodeADS runs the real `ward serve` and `ward node` binaries
// with the node proxy's config coming only from `ward serve` over delta
// ADS (no --config on the node): three pods enrol, a policy written into
// the server's config directory reaches the node and is enforced (an L4
// DENY by principal refuses evil's new connections while a's open
// connection stays up), the operator's tools see the node proxy, and a
// node proxy restarted without reaching the server serves nothing.
func TestWardNodeADS(t *testing.T) {
	c := newCluster(t)
	a, b, e := c.pod("xa"), c.pod("xb"), c.pod("xe")
	c.run(b, "echo:9000")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mesh")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
	for _, p := range []struct {
		pod         pod
		ns, sa, app string
	}{{a, "frontend", "web", "web"}, {b, "shop", "db", "db"}, {e, "evil", "x", "x"}} {
		yaml += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: " + p.pod.name + ", namespace: " + p.ns + "}\n" +
			"spec:\n  address: " + p.pod.addr + "\n  serviceAccount: " + p.sa + "\n  labels: {app: " + p.app + ", istio.io/dataplane-mode: ambient, ward.io/node: n1}\n"
	}
	writeFile(t, filepath.Join(cfg, "mesh.yaml"), yaml)
	bin := filepath.Join(dir, "ward")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wardmesh/ward/cmd/ward").CombinedOutput(); err != nil {
		t.Fatalf("build ward: %v\n%s", err, out)
	}
	addr, debug, token, root := startServeDebug(t, bin, cfg, filepath.Join(dir, "state"))
	nodeState := filepath.Join(dir, "node")
	args := []string{"node", "--name", "n1", "--xds-addr", addr, "--ca-addr", addr, "--ca-root", root, "--state-dir", nodeState}
	cmd, lines, exited := startNode(t, bin, append(args, "--join-token-file", token)...)
	waitLog := func(groups ...[]string) { t.Helper(); waitLines(t, lines, groups...) }
	waitLog([]string{"first config from the control plane"},
		[]string{"workload enrolled", a.name}, []string{"workload enrolled", b.name}, []string{"workload enrolled", e.name})

	for _, from := range []pod{a, e} {
		if got, err := exchange(t, from, b.addr+":9000", "hello"); err != nil || got != "hello" {
			t.Fatalf("%s → b before any policy: %q, %v", from.name, got, err)
		}
	}
	conn, err := dial(ctxT(t), a, b.addr+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("long-lived a → b = %q, %v", buf, err)
		}
	}
	roundTrip("before")

	// The policy is written where `ward serve` reads; the node proxy gets
	// exactly this one AuthorizationPolicy over ADS.
	writeFile(t, filepath.Join(cfg, "policy.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/evil/sa/x]}}]}]
`)
	waitLog([]string{"node config applied", "security.istio.io/v1beta1/AuthorizationPolicy", "changed=1", "removed=0"})
	if got, _ := exchange(t, e, b.addr+":9000", "evil"); got != "" {
		t.Fatalf("evil reached b after the DENY arrived over ADS: %q", got)
	}
	if got, err := exchange(t, a, b.addr+":9000", "new"); err != nil || got != "new" {
		t.Fatalf("a → b new connection: %q, %v", got, err)
	}
	roundTrip("after") // the unrelated open connection is untouched

	checkNodeCLI(t, bin, "http://"+debug, a)

	// Restarted while the server cannot be reached (a dead ADS address),
	// the node proxy never syncs and serves nothing: the rules the first
	// run left keep refusing b's traffic (fail closed).
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := <-exited; err != nil {
		t.Fatalf("ward node exit: %v", err)
	}
	exited <- nil
	dead := freeAddr(t)
	_, lines, _ = startNode(t, bin, "node", "--name", "n1", "--xds-addr", dead, "--ca-addr", addr, "--ca-root", root, "--state-dir", nodeState)
	waitLog([]string{"node certificate issued", "node/n1"}, []string{"node config stream ended; reconnecting", dead})
	if got, err := exchange(t, a, b.addr+":9000", "unsynced"); err == nil || got != "" {
		t.Fatalf("a reached b through a node proxy that never synced: %q, %v", got, err)
	}
}

// checkNodeCLI runs proxy-status and proxy-config against the real
// server with the real node proxy connected.
func checkNodeCLI(t *testing.T, bin, server string, a pod) {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ward %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	status := run("proxy-status", "--server", server)
	if !strings.Contains(status, "node~n1") || strings.Count(status, "SYNCED") < 5 {
		t.Errorf("proxy-status lacks the synced node proxy:\n%s", status)
	}
	var rows []struct {
		Proxy string
		Type  string
		Types map[string]struct{ Status string }
	}
	if err := json.Unmarshal([]byte(run("proxy-status", "--server", server, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Proxy != "node~n1" {
			continue
		}
		found = true
		for _, typ := range []string{"mesh", "workloads", "services", "peerauthn", "authz"} {
			if r.Type != "node" || r.Types[typ].Status != "SYNCED" {
				t.Errorf("node~n1 %s: type %q status %q", typ, r.Type, r.Types[typ].Status)
			}
		}
	}
	if !found {
		t.Errorf("proxy-status -o json has no node~n1: %+v", rows)
	}
	wl := run("proxy-config", "workloads", "node~n1", "--server", server)
	if !strings.Contains(wl, a.name) || !strings.Contains(wl, "spiffe://cluster.local/ns/shop/sa/db") || !strings.Contains(wl, "shop/deny-evil") || !strings.Contains(wl, "STRICT") {
		t.Errorf("proxy-config workloads:\n%s", wl)
	}
	pol := run("proxy-config", "policies", "node~n1", "--server", server)
	if !strings.Contains(pol, "deny-evil") || !strings.Contains(pol, "DENY") || strings.Contains(pol, "false") {
		t.Errorf("proxy-config policies (every policy ACKed):\n%s", pol)
	}
	var secrets []struct {
		SPIFFEID, Serial string
		NotAfter         time.Time
	}
	if err := json.Unmarshal([]byte(run("proxy-config", "secrets", "node~n1", "--server", server, "-o", "json")), &secrets); err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 3 {
		t.Fatalf("proxy-config secrets: %d identities, want 3: %+v", len(secrets), secrets)
	}
	for _, s := range secrets {
		if s.Serial == "" || !s.NotAfter.After(time.Now()) {
			t.Errorf("proxy-config secrets: %s has no current certificate: %+v", s.SPIFFEID, s)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
