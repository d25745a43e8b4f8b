package file

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadLogsOneLinePerViolation: a rejected object with several
// violations logs one record per violation at its field's line, so
// `ward serve` logs stay one line each.
func TestReloadLogsOneLinePerViolation(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "ap.yaml"), `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: many, namespace: shop}
spec:
  selector: {matchLabel: {app: a}}
  action: ALOW
`)
	var buf bytes.Buffer
	s, err := New(Config{Dir: dir, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got:\n%s", buf.String())
	}
	for i, want := range []string{"source=ap.yaml:5 ", "source=ap.yaml:6 "} {
		if !strings.Contains(lines[i], "config rejected") || !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "name=many") {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], `field=spec.selector.matchLabel`) || !strings.Contains(lines[1], `did you mean \"ALLOW\"?`) {
		t.Errorf("log:\n%s", buf.String())
	}
}
