package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardmesh/ward/mesh/schema"
)

// loadWithin loads dir within lim, failing the test after 10s: a load
// that blocks (on a FIFO) would otherwise hang the test for ever.
func loadWithin(t *testing.T, dir string, lim Limits) (*Result, error) {
	t.Helper()
	type out struct {
		res *Result
		err error
	}
	c := make(chan out, 1)
	go func() {
		res, err := LoadLimited(dir, lim)
		c <- out{res, err}
	}()
	select {
	case o := <-c:
		return o.res, o.err
	case <-time.After(10 * time.Second):
		t.Fatal("load blocked for 10s")
		return nil, nil
	}
}

// rejectedFile returns the rejection of file name, failing when absent.
func rejectedFile(t *testing.T, res *Result, name string) string {
	t.Helper()
	for _, rj := range res.Rejected {
		if rj.Source.File == name {
			return rj.Err.Error()
		}
	}
	t.Fatalf("%s not rejected; rejections: %v", name, res.Errs())
	return ""
}

// TestDevZeroSymlink performs the OOM attack: a *.yaml symlink to
// /dev/zero. It is refused (the link leaves the tree, and it is not a
// regular file) without reading, and the rest of the tree loads.
func TestDevZeroSymlink(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "shop.yaml"), goodPA)
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := loadWithin(t, dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if msg := rejectedFile(t, res, "zero.yaml"); !strings.Contains(msg, "zero.yaml: symlink resolves to /dev/zero, outside the config tree") {
		t.Errorf("rejection %q", msg)
	}
	if len(res.Objects) != 1 {
		t.Errorf("the rest of the tree did not load: %d objects", len(res.Objects))
	}
}

// TestNonRegularFilesRefused: a FIFO named *.yaml no longer blocks the
// load, and a device reached through a link inside the tree is refused as
// not a regular file.
func TestNonRegularFilesRefused(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "shop.yaml"), goodPA)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	res, err := loadWithin(t, dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if msg := rejectedFile(t, res, "fifo.yaml"); !strings.Contains(msg, "not a regular file (named pipe)") {
		t.Errorf("rejection %q", msg)
	}
	if len(res.Objects) != 1 {
		t.Errorf("the FIFO stopped the rest of the tree: %d objects", len(res.Objects))
	}
}

// TestSymlinkLeavingTreeRefused: a link to a file outside the config
// tree is refused with an error naming the file and its target.
func TestSymlinkLeavingTreeRefused(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	write(t, outside, goodPA)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../"+filepath.Base(filepath.Dir(outside))+"/secret.yaml", filepath.Join(dir, "sub", "out.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := loadWithin(t, dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	msg := rejectedFile(t, res, filepath.Join("sub", "out.yaml"))
	if !strings.Contains(msg, "sub/out.yaml: symlink resolves to") || !strings.Contains(msg, "outside the config tree") {
		t.Errorf("rejection %q", msg)
	}
	if len(res.Objects) != 0 {
		t.Errorf("an object was read through a link leaving the tree")
	}
}

// TestConfigMapLayout: a Kubernetes ConfigMap volume (x.yaml → ..data/x.yaml,
// ..data → ..<timestamp>) loads, and an update by swapping ..data is seen.
func TestConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := "..2026_12_06_07_00_00.000000001", "..2026_12_06_07_05_00.000000002"
	for v, body := range map[string]string{v1: goodPA, v2: disabledPA} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, v, "shop.yaml"), body)
	}
	if err := os.Symlink(v1, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/shop.yaml", filepath.Join(dir, "shop.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := loadWithin(t, dir, Limits{})
	if err != nil || len(res.Rejected) != 0 || len(res.Objects) != 1 {
		t.Fatalf("ConfigMap layout: err %v, rejected %v, %d objects", err, res.Errs(), len(res.Objects))
	}
	if got := modeOf(t, res.Snapshot); got.String() != "STRICT" {
		t.Errorf("mode %v", got)
	}
	// The kubelet's update: a new ..data link renamed over the old one.
	if err := os.Symlink(v2, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	res, err = loadWithin(t, dir, Limits{})
	if err != nil || len(res.Objects) != 1 {
		t.Fatalf("after the swap: %v, %v", err, res.Errs())
	}
	if got := modeOf(t, res.Snapshot); got.String() != "DISABLE" {
		t.Errorf("after the swap mode %v, want DISABLE", got)
	}
}

// TestTreeSizeBound performs the memory attack on a small scale: a tree
// over MaxTreeBytes is refused whole, with an error naming the file that
// crossed the bound, and the source keeps serving the last good config.
func TestTreeSizeBound(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a-shop.yaml"), goodPA)
	lim := Limits{MaxTreeBytes: 4 << 10}
	src, err := New(Config{Dir: dir, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Reload()
	if err != nil {
		t.Fatal(err)
	}
	filler := "# " + strings.Repeat("x", 1<<10) + "\n"
	for _, f := range []string{"b.yaml", "c.yaml", "d.yaml", "e.yaml"} {
		write(t, filepath.Join(dir, f), filler)
	}
	write(t, filepath.Join(dir, "a-shop.yaml"), disabledPA)
	_, err = src.Reload()
	var tooBig *TreeTooLargeError
	if !errors.As(err, &tooBig) || tooBig.File != "e.yaml" || !strings.Contains(err.Error(), "larger than 4096 bytes") {
		t.Fatalf("reload of a tree over the bound: %v", err)
	}
	if src.Snapshot().Version() != first.Version() {
		t.Error("a refused tree displaced the last good snapshot")
	}
}

// TestDocumentBounds: a document with too many nodes, or too many bytes,
// is refused before it is converted, with the file and line.
func TestDocumentBounds(t *testing.T) {
	dir := t.TempDir()
	many := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: [" + strings.Repeat("1,", 200) + "1]\n"
	write(t, filepath.Join(dir, "nodes.yaml"), goodPA+"---\n"+many)
	write(t, filepath.Join(dir, "bytes.yaml"), "---\n"+goodPA+"---\n# "+strings.Repeat("y", 2048)+"\n")
	res, err := loadWithin(t, dir, Limits{YAML: schema.Limits{MaxNodes: 100, MaxDocumentBytes: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	if msg := rejectedFile(t, res, "nodes.yaml"); !strings.Contains(msg, "nodes.yaml: yaml: document at line 7: more than 100 YAML nodes") {
		t.Errorf("rejection %q", msg)
	}
	if msg := rejectedFile(t, res, "bytes.yaml"); !strings.Contains(msg, "bytes.yaml: yaml: document at line 7: larger than 1024 bytes") {
		t.Errorf("rejection %q", msg)
	}
	// A file is all or nothing: nodes.yaml's valid first document is not
	// applied either.
	if len(res.Objects) != 0 {
		t.Errorf("%d objects from files that failed", len(res.Objects))
	}
}
