package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wardmesh/ward/telemetry/als"
)

const recommendData = "testdata/recommend"

// runRecommend runs `ward authz recommend` in process.
func runRecommend(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newAuthzRecommendCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	code := 0
	if err := cmd.Execute(); err != nil {
		code = 1
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
	}
	return out.String(), errOut.String(), code
}

// TestAuthzRecommendGolden: the dry-run recommendation from a state
// dir (calls.log and its rotated file) with selectors from --config.
func TestAuthzRecommendGolden(t *testing.T) {
	out, errOut, code := runRecommend(t, "--state", recommendData+"/state", "--config", recommendData+"/config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "verified with Ward's engine: 10 recorded allowed calls allowed") {
		t.Errorf("stderr = %q", errOut)
	}
	golden := filepath.Join(recommendData, "recommended.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (-update to rewrite):\n%s", golden, out)
	}
	if strings.Count(out, `
    istio.io/dry-run: "true"
`) != 4 {
		t.Errorf("want 4 dry-run policies:\n%s", out)
	}
}

// TestAuthzRecommendConfirmedByCheck: `ward authz check` allows every
// recorded allowed call (and denies the recorded denied one) against the
// config plus the enforced recommendation.
func TestAuthzRecommendConfirmedByCheck(t *testing.T) {
	out, errOut, code := runRecommend(t, "--state", recommendData+"/state", "--config", recommendData+"/config", "--enforce")
	if code != 0 || strings.Contains(out, `
    istio.io/dry-run:`) {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	meshYAML, err := os.ReadFile(filepath.Join(recommendData, "config", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config := string(meshYAML) + "\n---\n" + out
	checked := 0
	for _, r := range stateRecords(t) {
		if r.Destination == "" {
			continue // a client-side record
		}
		args := checkArgs(t, r)
		_, cerr, ccode := runCheck(t, config, args...)
		want := 0
		if r.Denied {
			want = 2
		}
		if ccode != want {
			t.Errorf("authz check %v: exit %d, want %d\n%s", args, ccode, want, cerr)
		}
		checked++
	}
	if checked != 11 { // 10 allowed, 1 denied
		t.Errorf("checked %d records, want 11", checked)
	}
}

func stateRecords(t *testing.T) []als.Record {
	t.Helper()
	var all []als.Record
	for _, f := range stateCallFiles(recommendData + "/state") {
		rs, err := readCallFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
	}
	return all
}

// checkArgs are the `ward authz check` flags of a recorded call: its
// destination workload (the first of its service account), port,
// source identity or address, and HTTP attributes.
func checkArgs(t *testing.T, r als.Record) []string {
	ns, sa, _ := spiffeParts(r.Destination)
	to := map[string]string{"cart": "cart-v1", "frontend": "frontend-1", "legacy": "legacy-1", "db": "db-1"}[sa]
	args := []string{"--to", ns + "/" + to, "--port", strconv.Itoa(int(inboundPort(r.Cluster)))}
	if r.Source != "" {
		args = append(args, "--from", r.Source)
	}
	if r.SourceAddress != "" {
		args = append(args, "--source-ip", r.SourceAddress)
	}
	if r.Protocol == "tcp" {
		return append(args, "--tcp")
	}
	return append(args, "--method", r.Method, "--path", r.Path)
}

// TestAuthzRecommendVerifyFails: a config that denies a recorded allowed
// call (drift since it was recorded) fails the verification, naming it.
func TestAuthzRecommendVerifyFails(t *testing.T) {
	dir := t.TempDir()
	meshYAML, err := os.ReadFile(filepath.Join(recommendData, "config", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	deny := `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-health, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/health]}}]}]
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), append(meshYAML, deny...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runRecommend(t, "--state", recommendData+"/state", "--config", dir)
	if code != 1 || !strings.Contains(errOut, "would deny a recorded call: plaintext 10.9.9.9 → shop/legacy-1 port 8080 http GET /health") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestAuthzRecommendWindow: --window keeps the records that recent
// before the newest: the rotated file's calls drop out.
func TestAuthzRecommendWindow(t *testing.T) {
	out, errOut, code := runRecommend(t, "--calls", recommendData+"/state/calls.log.1", "--calls", recommendData+"/state/calls.log", "--window", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "istio-system/sa/ingress") || !strings.Contains(out, "# Evidence: 8 calls") {
		t.Errorf("window not applied:\n%s", out)
	}
}

func TestAuthzRecommendNeedsRecords(t *testing.T) {
	if _, errOut, code := runRecommend(t); code != 1 || !strings.Contains(errOut, "give --state") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestAuthzRecommendSkipsRestricted: a workload that already has an
// enforced ALLOW policy gets no recommendation (it could only widen its
// access), unless --include-restricted.
func TestAuthzRecommendSkipsRestricted(t *testing.T) {
	dir := t.TempDir()
	meshYAML, err := os.ReadFile(filepath.Join(recommendData, "config", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	allow := `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-callers, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]}]
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), append(meshYAML, allow...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runRecommend(t, "--state", recommendData+"/state", "--config", dir)
	if code != 0 || strings.Contains(out, "ward-recommended-cart") || !strings.Contains(errOut, "note: 6 calls to shop/cart not used") {
		t.Fatalf("exit %d, stderr:\n%s\n%s", code, errOut, out)
	}
	out, errOut, code = runRecommend(t, "--state", recommendData+"/state", "--config", dir, "--include-restricted")
	if code != 0 || !strings.Contains(out, "ward-recommended-cart") {
		t.Fatalf("--include-restricted: exit %d, stderr:\n%s", code, errOut)
	}
}
