package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/mesh"
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
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("node is not installed: %v", err)
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
	boot := m.identityPlaintextXDS("ns", "client", "client-js", "127.0.0.3", map[string]string{"app": "client-js"})
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

// TestGRPCJSXDSServerThroughWard: a @grpc/grpc-js-xds server bound to
// 0.0.0.0:P asks Ward for its server listener by that name (grpc-js's own
// implementation of gRFC A36) and is put in serving mode; under STRICT a
// grpc-go client bootstrapped the Istio way reaches it by the short name
// xds:///jsecho:7070 over mTLS, and plaintext is refused.
func TestGRPCJSXDSServerThroughWard(t *testing.T) {
	dir := grpcJS(t)
	lis, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close() // node binds it; the port is free again until then
	labels := map[string]string{"app": "jsecho", mesh.LabelTLSMode: "istio"}
	m := newAuthnMesh(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: jsecho, namespace: ns}
spec:
  hosts: [jsecho.ns.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: jsecho}}
---
`+workloadEntry("jsecho-1", "ns", port, labels)+`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ns}
spec:
  mtls: {mode: STRICT}
`)
	bootFile := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(bootFile, m.identityPlaintextXDS("ns", "default", "jsecho-1", "127.0.0.1", labels), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "testdata/grpcjs/server.js", "testdata/grpcjs/test.proto", fmt.Sprintf("0.0.0.0:%d", port))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "GRPC_XDS_BOOTSTRAP="+bootFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "serving" {
				close(serving)
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { cancel(); <-exited })
	select {
	case <-serving:
	case <-exited:
		t.Fatalf("node server exited: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the grpc-js server never got its server listener from Ward\nstderr: %s", stderr.String())
	}

	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(m.istioBootstrap("ns", "client", "client-1", "127.0.0.2", map[string]string{"app": "client"}))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///jsecho:7070", grpc.WithResolvers(resolver), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	callCtx, callCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer callCancel()
	r, err := testgrpc.NewTestServiceClient(cc).UnaryCall(callCtx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("call to the grpc-js server: %v\nserver stderr: %s", err, stderr.String())
	}
	if want := "spiffe://cluster.local/ns/ns/sa/client"; r.GetHostname() != "grpc-js" || r.GetUsername() != want {
		t.Errorf("answered by %q seeing peer %q, want grpc-js seeing %s", r.GetHostname(), r.GetUsername(), want)
	}
	plain, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	if _, err := testgrpc.NewTestServiceClient(plain).UnaryCall(pctx, &testgrpc.SimpleRequest{}); err == nil {
		t.Error("plaintext call to the STRICT grpc-js server succeeded")
	}
}
