package oci

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/wardmesh/ward/internal/version"

	"github.com/wardmesh/ward/release/image"
)

const testVersion = "v0.0.0-imagetest"

// native is the platform the tests build and run: the machine's own.
var native = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// fixture is both images built once for the native platform, shared by
// the tests (building the ward binary is the expensive part).
var fixture struct {
	once    sync.Once
	src     image.Source
	results map[string]*Result
	err     error
	took    time.Duration
}

func testSource(t *testing.T) image.Source {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	src, err := image.GitSource(context.Background(), root, "")
	if err != nil {
		t.Fatal(err)
	}
	src.Version = testVersion
	return src
}

// built returns the images built from the checkout (skipped with -short).
func built(t *testing.T) (image.Source, map[string]*Result) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the ward binaries; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the images are linux images; this test runs their binary")
	}
	fixture.once.Do(func() {
		fixture.src = testSource(t)
		work, err := os.MkdirTemp("", "ward-image-test-")
		if err != nil {
			fixture.err = err
			return
		}
		defer os.RemoveAll(work)
		start := time.Now()
		b := New(Config{Source: fixture.src, Platforms: []v1.Platform{native}, WorkDir: work})
		fixture.results = map[string]*Result{}
		for _, spec := range image.Specs() {
			res, err := b.Build(context.Background(), spec)
			if err != nil {
				fixture.err = err
				return
			}
			fixture.results[spec.Name] = res
		}
		fixture.took = time.Since(start)
	})
	if fixture.err != nil {
		t.Fatalf("build images: %v", fixture.err)
	}
	t.Logf("images built in %v (shared by the tests)", fixture.took.Round(time.Millisecond))
	return fixture.src, fixture.results
}

// nativeImage is res's image for the native platform.
func nativeImage(t *testing.T, res *Result) v1.Image {
	t.Helper()
	im, err := res.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || !im.Manifests[0].Platform.Equals(native) {
		t.Fatalf("%s index: want one manifest for %s, got %+v", res.Spec.Name, native, im.Manifests)
	}
	img, err := res.Index.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// unpack extracts img's file system into a new directory and returns it.
func unpack(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		unpackEntry(t, root, h, tr)
	}
	// The root of the image is world-searchable, as a container runtime makes it.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func unpackEntry(t *testing.T, root string, h *tar.Header, r io.Reader) {
	t.Helper()
	path := filepath.Join(root, filepath.Clean("/"+h.Name))
	mode := h.FileInfo().Mode()
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
	case tar.TypeReg:
		b, err := io.ReadAll(r)
		if err == nil {
			err = os.WriteFile(path, b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unexpected %q entry %s in image", h.Typeflag, h.Name)
	}
	if err := os.Chmod(path, mode.Perm()|mode&(os.ModeSticky)); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEntrypointRunsAsNonRoot unpacks each image and runs its entrypoint's
// `version --json` chrooted into the unpacked root file system as the
// image's user (65532), as a container runtime would: the binary is static,
// needs nothing else from the image, and its build info shows the source.
func TestEntrypointRunsAsNonRoot(t *testing.T) {
	src, results := built(t)
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root (CI runs the tests as root): the entrypoint is not run")
	}
	for _, spec := range image.Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			img := nativeImage(t, results[spec.Name])
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			root := unpack(t, img)
			cmd := exec.Command(cf.Config.Entrypoint[0], "version", "--json")
			cmd.Dir, cmd.Env = cf.Config.WorkingDir, cf.Config.Env
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: image.NonRoot, Gid: image.NonRoot}}
			out, err := cmd.Output()
			if errors.Is(err, syscall.EPERM) {
				t.Skipf("root without CAP_SYS_CHROOT/CAP_SETUID (a restricted container?): %v", err)
			}
			if err != nil {
				t.Fatalf("%s version --json in the image: %v %s", spec.Name, err, stderrOf(err))
			}
			var v version.Info
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("decode %s version --json: %v\n%s", spec.Name, err, out)
			}
			if v.Version != testVersion || v.Platform != native.String() || !strings.HasPrefix(v.GoVersion, "go") {
				t.Errorf("version = %q %q %q, want %q %q go…", v.Version, v.Platform, v.GoVersion, testVersion, native)
			}
			if src.Revision != "" && (v.Revision != src.Revision || v.Modified != src.Modified || v.RevisionAt == "") {
				t.Errorf("revision = %q modified %v at %q, want HEAD %q modified %v", v.Revision, v.Modified, v.RevisionAt, src.Revision, src.Modified)
			}
			if !hasModule(v.Modules, "google.golang.org/grpc") {
				t.Errorf("version lists no google.golang.org/grpc module: %+v", v.Modules)
			}
		})
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func hasModule(ms []version.Module, path string) bool {
	for _, m := range ms {
		if m.Path == path && m.Version != "" && m.Sum != "" {
			return true
		}
	}
	return false
}

// nativeIndexImage is idx's image for the native platform, read through.
func nativeIndexImage(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Equals(native) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			_, err = img.ConfigFile()
			return img, err
		}
	}
	return nil, fmt.Errorf("no %s image in the index", native)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
