package ambient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCNIHandsPodNamespacesToWardNode runs the real binary as the CNI
// plugin (<bin dir>/ward-cni, with the environment and stdin a container
// runtime gives it) and as `ward node --cni-socket`, with pods whose
// namespaces are where runtimes put them, not under --netns-dir: a's is
// /proc/<pid>/ns/net, b's a bind mount at <tmp>/cni-<id>. Their
// WorkloadEntries are named as the kube source names pods (pod.<name>).
// While no node proxy runs, ADD fails (failClosed); once both are added,
// a → b is carried over HBONE with a's identity; a pod reported before its
// config is enrolled when the config arrives and unenrolled when it goes;
// DEL removes b's capture; a restarted node proxy serves a again.
func TestCNIHandsPodNamespacesToWardNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.pod("cnia"), c.pod("cnib")
	c.run(a, "echo:9001")
	c.run(b, "echo:9000")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mesh")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
	for _, p := range []struct{ name, addr, ns, sa string }{{"a", a.addr, "frontend", "web"}, {"b", b.addr, "shop", "db"}} {
		yaml += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: pod." + p.name + ", namespace: " + p.ns + "}\n" +
			"spec:\n  address: " + p.addr + "\n  serviceAccount: " + p.sa + "\n  labels: {istio.io/dataplane-mode: ambient, ward.io/node: n1}\n"
	}
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ward")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wardmesh/ward/cmd/ward").CombinedOutput(); err != nil {
		t.Fatalf("build ward: %v\n%s", err, out)
	}
	// What `ward cni install` does on a node: the plugin is the same binary.
	binDir := filepath.Join(dir, "opt-cni-bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(binDir, "ward-cni")
	if err := os.Symlink(bin, plugin); err != nil {
		t.Fatal(err)
	}
	// b's namespace as a runtime names it: a bind mount outside --netns-dir.
	bNetns := filepath.Join(dir, "cni-5f1e0c2a")
	if err := os.WriteFile(bNetns, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(b.path, bNetns, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount b's namespace: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bNetns, unix.MNT_DETACH) })
	aNetns := fmt.Sprintf("/proc/%d/ns/net", c.pids[a.name])

	sock := filepath.Join(dir, "run", "cni.sock")
	netConf := `{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ward-cni","socket":"` + sock + `","prevResult":%s}`
	cniCall := func(cmd, ns, name, uid, netns string) (string, string, error) {
		prev := fmt.Sprintf(`{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":%q}],"ips":[{"address":"10.254.0.1/24","interface":0}]}`, netns)
		p := exec.Command(plugin)
		p.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID=ctr-"+name, "CNI_NETNS="+netns, "CNI_IFNAME=eth0",
			"CNI_PATH="+binDir, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+ns+";K8S_POD_NAME="+name+";K8S_POD_INFRA_CONTAINER_ID=ctr-"+name+";K8S_POD_UID="+uid)
		p.Stdin = strings.NewReader(fmt.Sprintf(netConf, prev))
		var out bytes.Buffer
		p.Stdout = &out
		err := p.Run()
		return out.String(), prev, err
	}

	// No node proxy yet: the pod must not start uncaptured.
	out, _, err := cniCall("ADD", "shop", "b", "uid-b", bNetns)
	var cerr struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err == nil || json.Unmarshal([]byte(out), &cerr) != nil || cerr.Code != 11 || !strings.Contains(cerr.Msg, "shop/b") || !strings.Contains(cerr.Msg, "not reachable") {
		t.Fatalf("ADD with no node proxy: %v, stdout %s; want a failure (code 11) naming the pod and the unreachable node proxy", err, out)
	}

	caAddr, token, root := startServe(t, bin, cfg, filepath.Join(dir, "state"))
	args := []string{"node", "--name", "n1", "--config", cfg, "--ca-addr", caAddr, "--ca-root", root,
		"--state-dir", filepath.Join(dir, "node"), "--cni-socket", sock, "--log-level", "debug"}
	cmd, lines, exited := startNode(t, bin, append(args, "--join-token-file", token)...)
	waitLines(t, lines, []string{"network namespaces from the CNI plugin", sock})
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want mode 0600", sock, fi, err)
	}
	for _, p := range []struct{ ns, name, netns string }{{"frontend", "a", aNetns}, {"shop", "b", bNetns}} {
		out, prev, err := cniCall("ADD", p.ns, p.name, "uid-"+p.name, p.netns)
		if err != nil || strings.TrimSpace(out) != prev {
			t.Fatalf("ADD %s: %v; stdout %s, want prevResult %s", p.name, err, out, prev)
		}
	}
	waitLines(t, lines, []string{"workload enrolled", "name=pod.a", aNetns}, []string{"workload enrolled", "name=pod.b", bNetns})
	if got, err := exchange(t, a, b.addr+":9000", "via cni"); err != nil || got != "via cni" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	waitLines(t, lines, []string{"inbound connection", "name=pod.b", "transport=hbone", "spiffe://cluster.local/ns/frontend/sa/web", "allowed=true"})

	// The other order: the sandbox first, its config later; and the
	// config dropping it unenrols it.
	d := c.pod("cnid")
	if out, prev, err := cniCall("ADD", "shop", "d", "uid-d", d.path); err != nil || strings.TrimSpace(out) != prev {
		t.Fatalf("ADD d: %v; stdout %s", err, out)
	}
	late := filepath.Join(cfg, "late.yaml")
	dYAML := "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: pod.d, namespace: shop}\n" +
		"spec:\n  address: " + d.addr + "\n  serviceAccount: db\n  labels: {istio.io/dataplane-mode: ambient, ward.io/node: n1}\n"
	if err := os.WriteFile(late, []byte(dYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLines(t, lines, []string{"workload enrolled", "name=pod.d", d.path})
	if err := os.Remove(late); err != nil {
		t.Fatal(err)
	}
	waitLines(t, lines, []string{"workload unenrolled", "name=pod.d"})
	if rules := captureRules(t, d); strings.Contains(rules, "redirect") {
		t.Errorf("d's capture rules stay after its config left:\n%s", rules)
	}

	// DEL (the runtime may give no netns any more) removes b's capture.
	if out, _, err := cniCall("DEL", "shop", "b", "uid-b", ""); err != nil || out != "" {
		t.Fatalf("DEL: %v, stdout %q", err, out)
	}
	waitLines(t, lines, []string{"workload unenrolled", "name=pod.b"})
	if rules := captureRules(t, b); strings.Contains(rules, "redirect") {
		t.Errorf("b's capture rules stay after DEL:\n%s", rules)
	}

	// The runtime reports a pod once: a restarted node proxy serves a
	// again from the record it kept beside the socket, and not b.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until the process exits
	}
	if err := <-exited; err != nil {
		t.Fatalf("ward node exit: %v", err)
	}
	exited <- nil // for the cleanup
	_, lines, _ = startNode(t, bin, args...)
	waitLines(t, lines, []string{"workload enrolled", "name=pod.a", aNetns})
	if rules := captureRules(t, b); strings.Contains(rules, "redirect") {
		t.Errorf("b captured again after restart:\n%s", rules)
	}
}
