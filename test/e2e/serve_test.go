package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildWard builds the ward binary once per test binary run.
func buildWard(t *testing.T) string {
	t.Helper()
	wardOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ward-bin-")
		if err != nil {
			wardErr = err
			return
		}
		wardPath = filepath.Join(dir, "ward")
		out, err := exec.Command("go", "build", "-o", wardPath, "github.com/wardmesh/ward/cmd/ward").CombinedOutput()
		if err != nil {
			wardErr = &buildError{out: string(out), err: err}
		}
	})
	if wardErr != nil {
		t.Fatalf("build ward: %v", wardErr)
	}
	return wardPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// wardProc is a running `ward` process whose stderr lines are streamed.
type wardProc struct {
	cmd   *exec.Cmd
	lines chan string
}

func startWard(t *testing.T, args ...string) *wardProc {
	t.Helper()
	cmd := exec.Command(buildWard(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &wardProc{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return p
}

// waitLine returns the first stderr line matching re, bounded by timeout.
func (p *wardProc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("ward exited before logging %q", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("ward did not log %q within %s", re, timeout)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type configz struct {
	Version string `json:"version"`
	Objects []struct {
		Kind, Namespace, Name, Source string
		Stale                         bool
	} `json:"objects"`
	Rejected []struct {
		Kind, Namespace, Name, Source, Error string
		KeptLastGood                         bool
	} `json:"rejected"`
}

// TestServeExamples runs `ward serve` on a copy of the examples, checks the
// debug endpoints, breaks a file and fixes it, and stops it with SIGTERM.
func TestServeExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.CopyFS(cfg, os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	unreachable := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: unreachable-idp, namespace: bookinfo}
spec:
  selector:
    matchLabels: {app: productpage}
  jwtRules:
  - issuer: https://issuer.test
    jwksUri: https://127.0.0.1:1/jwks.json
`
	if err := os.WriteFile(filepath.Join(cfg, "bookinfo", "jwt.yaml"), []byte(unreachable), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startWard(t, "serve", "--config", cfg, "--state", filepath.Join(dir, "state"),
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0", "--ext-authz-target", "127.0.0.1:9191", "--debounce", "20ms")
	// The first snapshot is built before the servers listen.
	p.waitLine(t, regexp.MustCompile(`msg=snapshot .*rejected=0`), time.Minute)
	addr := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+)`), 30*time.Second)[1]
	base := "http://" + addr

	var z configz
	getJSON(t, base+"/debug/configz", &z)
	if len(z.Objects) < 20 || len(z.Rejected) != 0 {
		t.Fatalf("configz: %d objects, %d rejected; want the examples loaded cleanly", len(z.Objects), len(z.Rejected))
	}
	var caz map[string]any
	getJSON(t, base+"/debug/ca", &caz)
	if len(caz) == 0 {
		t.Fatal("/debug/ca is empty")
	}
	// A RequestAuthentication whose keys cannot be fetched (a closed port on
	// loopback) is tracked and reported while presented tokens fail closed.
	var jwksz []map[string]any
	getJSON(t, base+"/debug/jwks", &jwksz)
	if len(jwksz) != 1 || jwksz[0]["issuer"] != "https://issuer.test" {
		t.Fatalf("/debug/jwks = %v, want the unreachable issuer", jwksz)
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()

	// Break the bookinfo PeerAuthentication: the old version must keep serving.
	path := filepath.Join(cfg, "bookinfo", "security.yaml")
	orig, _ := os.ReadFile(path)
	broken := strings.Replace(string(orig), "mode: STRICT", "mode: STRIKT", 1)
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, regexp.MustCompile(`config rejected.*PeerAuthentication.*kept_last_good=true.*spec.mtls.mode`), 30*time.Second)
	getJSON(t, base+"/debug/configz", &z)
	if len(z.Rejected) != 1 || !z.Rejected[0].KeptLastGood {
		t.Fatalf("configz rejections = %+v, want one with keptLastGood", z.Rejected)
	}

	// A valid edit replaces the last good version.
	fixed := strings.Replace(string(orig), "mode: STRICT", "mode: PERMISSIVE", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, regexp.MustCompile(`msg=snapshot .*rejected=0`), 30*time.Second)
	getJSON(t, base+"/debug/configz", &z)
	if len(z.Rejected) != 0 {
		t.Fatalf("rejections remain after the fix: %+v", z.Rejected)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ward did not exit cleanly on SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ward did not stop within 20s of SIGTERM")
	}
}
