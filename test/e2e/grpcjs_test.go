package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// grpcJS returns the directory holding @grpc/grpc-js-xds, installing it
// with the project's script (pinned, cached), or skips the test when this
// machine cannot have it.
func grpcJS(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", "../../hack/install-grpc-js.sh").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if err != nil || dir == "" {
		t.Skipf("@grpc/grpc-js-xds cannot be installed on this machine (hack/install-grpc-js.sh: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js-xds")); err != nil {
		t.Skipf("@grpc/grpc-js-xds is not installed: %v", err)
	}
	return dir
}

type jsResult struct {
	Target, Header, Hostname, Username, Error string
}

// TestGRPCJSXDSClientThroughWard: Node's @grpc/grpc-js-xds, an xDS client
// Ward has no code for, calls the grpc-go servers of newIstioCompatMesh
// through Ward, bootstrapped by Ward's agent (insecure xDS channel: grpc-js
// has no tls channel credentials; node.locality present, which it
// requires). Short and full names resolve, the header routes to v2, and
// every call is mTLS with the client's SPIFFE ID.
func TestGRPCJSXDSClientThroughWard(t *testing.T) {
	dir := grpcJS(t)
	m := newIstioCompatMesh(t)
	boot := m.identity("ns", "client", "client-js", "127.0.0.3", map[string]string{"app": "client-js"})
	bootFile := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(bootFile, boot, 0o600); err != nil {
		t.Fatal(err)
	}
	type jsCall struct {
		Target string `json:"target"`
		Header string `json:"header,omitempty"`
	}
	calls := []jsCall{
		{"echo:7070", ""}, {"echo:7070", "v2"},
		{"echo.ns:7070", ""}, {"echo.ns:7070", "v2"},
		{"echo.ns.svc.cluster.local:7070", ""},
	}
	want := []string{"v1", "v2", "v1", "v2", "v1"}
	arg, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/grpcjs/client.js", "testdata/grpcjs/test.proto", string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "GRPC_XDS_BOOTSTRAP="+bootFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node client: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var got []jsResult
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got) != len(calls) {
		t.Fatalf("node client printed %q (%v)\nstderr: %s", stdout.String(), err, stderr.String())
	}
	t.Logf("node client: %s", stdout.String())
	const client = "spiffe://cluster.local/ns/ns/sa/client"
	for i, r := range got {
		if r.Error != "" || r.Hostname != want[i] || r.Username != client {
			t.Errorf("xds:///%s x-version %q: %+v; want %s seeing %s over mTLS", calls[i].Target, calls[i].Header, r, want[i], client)
		}
	}
}
