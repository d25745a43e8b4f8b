package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wardmesh/ward/mesh"
)

const allowGet = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: ALLOW
  rules:
  - to:
    - operation: {methods: [GET]}
`

var allowKey = mesh.Key{Kind: mesh.KindAuthorizationPolicy, Namespace: "shop", Name: "allow-get"}

// writeInPlace writes like a slow editor or `cat > file`: truncate, then
// write, no rename.
func writeInPlace(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hasPolicy(s *mesh.Snapshot) bool {
	_, ok := s.Get(allowKey)
	return ok
}

// TestPartialWriteNotApplied performs the partial-write attack: the file
// holding a workload's only ALLOW policy is rewritten in place, slowly.
// Whether the half-written file fails to parse (cut mid-document) or
// parses without the policy (cut at a document boundary), the previous
// objects keep serving; once the complete file has been stable for the
// quiet period, the new set applies.
func TestPartialWriteNotApplied(t *testing.T) {
	full := goodPA + "---\n" + allowGet
	for name, half := range map[string]string{
		"cut mid-document":   full[:len(full)-30],
		"cut at a boundary":  goodPA + "---\n",
		"truncated to empty": "",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "shop.yaml")
			write(t, path, full)
			clk := &fakeClock{now: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
			src, err := New(Config{Dir: dir, Clock: clk, Quiet: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			first, err := src.Reload()
			if err != nil || !hasPolicy(first) {
				t.Fatalf("first load: %v", err)
			}
			writeInPlace(t, path, half)
			s, err := src.Reload()
			if err != nil || !hasPolicy(s) || s.Version() != first.Version() {
				t.Fatalf("half-written file displaced the served config (policy served: %v)", hasPolicy(s))
			}
			if st := src.Status(); len(st.Pending) != 1 || st.Pending[0] != "shop.yaml" {
				t.Errorf("status pending %v, want [shop.yaml]", st.Pending)
			}
			// The writer finishes within the quiet period: still the old set.
			clk.Advance(50 * time.Millisecond)
			writeInPlace(t, path, full+"---\n"+strings.Replace(allowGet, "allow-get", "allow-get-2", 1))
			if s, _ = src.Reload(); s.Version() != first.Version() {
				t.Fatal("a file changed within the quiet period was applied")
			}
			clk.Advance(100 * time.Millisecond)
			s, err = src.Reload()
			if err != nil || !hasPolicy(s) || s.Len() != 3 {
				t.Fatalf("complete, stable file not applied: %v, %d objects", err, s.Len())
			}
			if len(src.Status().Pending) != 0 {
				t.Errorf("still pending: %v", src.Status().Pending)
			}
		})
	}
}

// TestPartialWriteWatched runs the attack through Run's watcher and
// debounce, with the writer stalled for as many reloads as it takes: no
// published snapshot lacks the ALLOW policy. The test lets reloads run
// one at a time (testHook) and moves the stability clock by hand, so
// "stalled" does not depend on the machine's speed.
func TestPartialWriteWatched(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.yaml")
	full := goodPA + "---\n" + allowGet
	write(t, path, full)
	clk := &fakeClock{now: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
	snaps := make(chan *mesh.Snapshot, 16)
	reloads := make(chan Status, 64)
	src, err := New(Config{Dir: dir, Clock: clk, Quiet: 20 * time.Millisecond, MaxWait: 200 * time.Millisecond,
		OnSnapshot: func(s *mesh.Snapshot) { snaps <- s }, OnReload: func(st Status) { reloads <- st }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	step := make(chan struct{})
	src.testHook = func() {
		select {
		case <-step:
		case <-ctx.Done():
		}
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	reload := func() {
		t.Helper()
		select {
		case step <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatal("no reload started within 10s")
		}
	}
	reload()
	first := next(t, snaps)
	pending := func(st Status) bool { return len(st.Pending) == 1 && st.Pending[0] == "shop.yaml" }
	writeInPlace(t, path, goodPA+"---\n")
	reload() // sees the half file
	waitStatus(t, reloads, pending)
	reload() // the re-check: the writer has not finished, still held
	waitStatus(t, reloads, pending)
	if got := src.Snapshot(); !hasPolicy(got) || got.Version() != first.Version() {
		t.Fatal("the half-written file was applied")
	}
	writeInPlace(t, path, strings.Replace(full, "[GET]", "[GET, HEAD]", 1))
	reload() // sees the complete file
	waitStatus(t, reloads, pending)
	clk.Advance(20 * time.Millisecond)
	reload() // stable now
	s := next(t, snaps)
	if !hasPolicy(s) || s.Version() == first.Version() {
		t.Fatal("the complete file was not applied, or a published snapshot lacks the ALLOW policy")
	}
}

// TestStuckReloadUnhealthy: a reload that does not finish within
// StuckAfter makes Healthy (and so /readyz) fail, and recovers after.
func TestStuckReloadUnhealthy(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "shop.yaml"), goodPA)
	clk := &fakeClock{now: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
	src, err := New(Config{Dir: dir, Clock: clk, StuckAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	src.testHook = func() { close(entered); <-release }
	done := make(chan struct{})
	go func() { defer close(done); _, _ = src.Reload() }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("reload did not start within 10s")
	}
	if err := src.Healthy(); err != nil {
		t.Fatalf("a reload that just started is reported stuck: %v", err)
	}
	clk.Advance(2 * time.Minute)
	if err := src.Healthy(); err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("a reload blocked for 2m: Healthy() = %v", err)
	}
	var m dto.Metric
	if err := src.metrics.stuck.Write(&m); err != nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("ward_config_reload_stuck = %v (%v), want 1", m.GetGauge().GetValue(), err)
	}
	close(release)
	<-done
	if err := src.Healthy(); err != nil {
		t.Errorf("after the reload finished: %v", err)
	}
	// A change seen but never reloaded is stuck too.
	src.health.changed(clk.Now())
	clk.Advance(2 * time.Minute)
	if err := src.Healthy(); err == nil {
		t.Error("a change waiting 2m for a reload is not reported")
	}
}
