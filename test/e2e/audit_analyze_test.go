package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnalyzeCLI runs `ward analyze` on the examples (warnings only, exit
// 0) and on a tree with a broken reference (an error, exit 3).
func TestAnalyzeCLI(t *testing.T) {
	out, stderr, code := runWard(t, "analyze", "--config", examplesDir(t), "-o", "json")
	if code != 0 {
		t.Fatalf("analyze examples: exit %d: %s", code, stderr)
	}
	var ds []struct{ Code, Name, Severity, Object string }
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(ds) == 0 || ds[0].Code != "WA0302" {
		t.Errorf("examples diagnostics = %+v, want the HTTP-on-TCP warnings first", ds)
	}

	dir := t.TempDir()
	broken := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: app}
spec:
  hosts: ["web.app.svc.cluster.local"]
  http: [{route: [{destination: {host: nosuch.app.svc.cluster.local}}]}]
`
	if err := os.WriteFile(filepath.Join(dir, "vs.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = runWard(t, "analyze", "--config", dir)
	if code != 3 || !strings.Contains(out, "WA0101") || !strings.Contains(out, "VirtualService app/vs") {
		t.Errorf("broken reference: exit %d, output:\n%s", code, out)
	}
	out, _, code = runWard(t, "analyze", "--codes")
	if code != 0 || !strings.Contains(out, "WA0104  DestinationRuleTLSWithoutSAN") {
		t.Errorf("--codes: exit %d:\n%s", code, out)
	}
}
