package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func TestLoadExamples(t *testing.T) {
	res, err := Load("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, rj := range res.Rejected {
		t.Errorf("example rejected: %v", rj.Err)
	}
	if len(res.Objects) < 20 {
		t.Errorf("loaded %d objects from examples, want at least 20", len(res.Objects))
	}
	if res.Mesh == nil || res.Mesh.TrustDomain != "cluster.local" {
		t.Errorf("MeshConfig not loaded: %+v", res.Mesh)
	}
	if got := res.Snapshot.ServicesByHost("reviews.bookinfo.svc.cluster.local"); len(got) != 1 || len(res.Snapshot.Members(got[0])) != 3 {
		t.Errorf("reviews service should have 3 WorkloadEntry members, got %v", got)
	}
}

const goodPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
`

const badPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRIKT}
`

const disabledPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: DISABLE}
`

func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func modeOf(t *testing.T, s *mesh.Snapshot) security.PeerAuthentication_MutualTLS_Mode {
	t.Helper()
	c, ok := s.Get(mesh.Key{Kind: mesh.KindPeerAuthentication, Namespace: "shop", Name: "default"})
	if !ok {
		t.Fatalf("PeerAuthentication shop/default missing from snapshot %s", s.Version())
	}
	return c.Spec.(*security.PeerAuthentication).GetMtls().GetMode()
}

// TestLoadRejectsWithPath checks a rejection names file, the line of the
// offending field (not of the document), object and field.
func TestLoadRejectsWithPath(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "pa.yaml"), "# comment\n"+badPA)
	res, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 {
		t.Fatalf("want 1 rejection, got %v", res.Errs())
	}
	msg := res.Rejected[0].Err.Error()
	for _, want := range []string{"pa.yaml:6:", "PeerAuthentication shop/default", "spec.mtls.mode", "STRIKT", `did you mean "STRICT"?`} {
		if !strings.Contains(msg, want) {
			t.Errorf("rejection %q does not mention %q", msg, want)
		}
	}
}

// TestWatchKeepsLastGood writes a good file, a broken edit, then a fix, and
// checks the served snapshot goes good → still old good → new good.
func TestWatchKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.yaml")
	write(t, path, goodPA)
	snaps := make(chan *mesh.Snapshot, 16)
	reloads := make(chan Status, 16)
	src, err := New(Config{Dir: dir, Quiet: 20 * time.Millisecond, MaxWait: 200 * time.Millisecond,
		OnSnapshot: func(s *mesh.Snapshot) { snaps <- s }, OnReload: func(st Status) { reloads <- st }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	first := next(t, snaps)
	if got := modeOf(t, first); got != security.PeerAuthentication_MutualTLS_STRICT {
		t.Fatalf("initial mode %v, want STRICT", got)
	}

	write(t, path, badPA)
	waitStatus(t, reloads, func(st Status) bool { return len(st.Rejected) == 1 })
	if src.Snapshot().Version() != first.Version() {
		t.Fatalf("broken edit displaced the last good snapshot")
	}
	st := src.Status()
	if !st.Rejected[0].KeptLastGood || !strings.Contains(st.Rejected[0].Error, "spec.mtls.mode") {
		t.Errorf("rejection status %+v: want keptLastGood and the field path", st.Rejected[0])
	}

	write(t, path, disabledPA)
	fixed := next(t, snaps)
	if got := modeOf(t, fixed); got != security.PeerAuthentication_MutualTLS_DISABLE {
		t.Fatalf("after fix mode %v, want DISABLE", got)
	}
	if len(src.Status().Rejected) != 0 {
		t.Errorf("rejections remain after fix: %+v", src.Status().Rejected)
	}
}

// TestBrokenFileKeepsItsObjects checks that unparsable YAML keeps every
// object the file used to hold, while a removed file drops its objects.
func TestBrokenFileKeepsItsObjects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.yaml")
	write(t, path, goodPA)
	src, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Reload()
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, "apiVersion: [unclosed\n")
	s, err := src.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != first.Version() {
		t.Fatalf("unparsable file dropped its objects")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s, _ = src.Reload()
	if s.Len() != 0 {
		t.Fatalf("removed file still served: %d objects", s.Len())
	}
}

func TestDuplicateObjectRejected(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), goodPA)
	write(t, filepath.Join(dir, "b.yaml"), disabledPA)
	res, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 || len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0].Err.Error(), "first defined at a.yaml:1") {
		t.Fatalf("want a.yaml kept and b.yaml rejected as duplicate, got objects=%d rejected=%v", len(res.Objects), res.Errs())
	}
}

func next(t *testing.T, c <-chan *mesh.Snapshot) *mesh.Snapshot {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot published within 10s")
		return nil
	}
}

// waitStatus waits, bounded, for a reload whose status satisfies ok.
func waitStatus(t *testing.T, reloads <-chan Status, ok func(Status) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case st := <-reloads:
			if ok(st) {
				return
			}
		case <-timeout:
			t.Fatal("no reload reached the expected status within 10s")
		}
	}
}
