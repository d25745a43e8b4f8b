package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wardmesh/ward/release/image"
)

// files lists img's flattened file system: path → header.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(path.Clean(h.Name), "/")] = h
	}
}

// shells are names no image may contain: shells and multi-call binaries
// that provide one.
var shells = []string{"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox"}

// TestImageIsDistrolessAndNonRoot checks each image's file system and
// config: exactly the expected files (no shell, no package manager, no
// /bin), owned as expected, and a config that runs the binary as 65532.
func TestImageIsDistrolessAndNonRoot(t *testing.T) {
	_, results := built(t)
	for _, spec := range image.Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			img := nativeImage(t, results[spec.Name])
			fs := files(t, img)
			var names []string
			for name, h := range fs {
				names = append(names, name)
				if slices.Contains(shells, path.Base(name)) {
					t.Errorf("image has a shell: %s", name)
				}
				if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
					t.Errorf("image has a link: %s", name)
				}
				if h.Mode&0o6000 != 0 {
					t.Errorf("%s is setuid/setgid", name)
				}
			}
			slices.Sort(names)
			want := []string{"/etc", "/etc/group", "/etc/nsswitch.conf", "/etc/passwd", "/home", "/home/nonroot", "/tmp",
				"/usr", "/usr/local", "/usr/local/bin", spec.Entrypoint(), "/usr/share", "/usr/share/sbom", image.SBOMPath(spec)}
			slices.Sort(want)
			if d := cmp.Diff(want, names); d != "" {
				t.Errorf("image files (-want +got):\n%s", d)
			}
			if h := fs["/home/nonroot"]; h == nil || h.Uid != image.NonRoot || h.Gid != image.NonRoot {
				t.Errorf("/home/nonroot not owned by nonroot: %+v", h)
			}
			if h := fs["/tmp"]; h == nil || h.Mode != 0o1777 {
				t.Errorf("/tmp is not 1777: %+v", h)
			}
			if h := fs[spec.Entrypoint()]; h == nil || h.Uid != 0 || h.Mode != 0o755 {
				t.Errorf("binary not root-owned 0755 (the nonroot user must not replace it): %+v", h)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{spec.Entrypoint()}) || cf.Config.Cmd != nil {
				t.Errorf("config user %q entrypoint %q cmd %q", cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd)
			}
			if cf.OS != native.OS || cf.Architecture != native.Architecture {
				t.Errorf("config platform %s/%s, want %s", cf.OS, cf.Architecture, native)
			}
		})
	}
}

// TestLabelsAndAnnotations checks the OCI labels in each image config and
// the same annotations on its manifest and index, against the checkout.
func TestLabelsAndAnnotations(t *testing.T) {
	src, results := built(t)
	head := ""
	if out, err := exec.Command("git", "-C", src.Dir, "rev-parse", "HEAD").Output(); err == nil {
		head = strings.TrimSpace(string(out))
	}
	for _, spec := range image.Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			res := results[spec.Name]
			img := nativeImage(t, res)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			l := cf.Config.Labels
			want := map[string]string{
				"org.opencontainers.image.title":    spec.Name,
				"org.opencontainers.image.source":   "https://github.com/wardmesh/ward",
				"org.opencontainers.image.version":  testVersion,
				"org.opencontainers.image.created":  src.Created.UTC().Format(time.RFC3339),
				"org.opencontainers.image.licenses": src.Licenses,
			}
			if head != "" {
				want["org.opencontainers.image.revision"] = head
			} else {
				t.Log("no git checkout: the revision label is not checked")
			}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("label %s = %q, want %q", k, l[k], v)
				}
			}
			if !cf.Created.Time.Equal(src.Created) || cf.History[len(cf.History)-1].Created.Time != cf.Created.Time {
				t.Errorf("config created %v, history %v: want the source time %v", cf.Created, cf.History, src.Created)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			im, err := res.Index.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(l, m.Annotations); d != "" {
				t.Errorf("manifest annotations differ from labels (-labels +annotations):\n%s", d)
			}
			if d := cmp.Diff(l, im.Annotations); d != "" {
				t.Errorf("index annotations differ from labels (-labels +annotations):\n%s", d)
			}
			if m.MediaType != types.OCIManifestSchema1 || im.MediaType != types.OCIImageIndex || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("media types %s %s %s, want OCI", m.MediaType, im.MediaType, m.Config.MediaType)
			}
		})
	}
}

// TestReproducible builds each image a second time, from a fresh work
// directory, and expects the same index digest. (The binary comes from the
// Go build cache the second time; binary reproducibility across machines
// rests on -trimpath, -buildid= and the pinned environment: see
// docs/release.md for the cold-cache check.)
func TestReproducible(t *testing.T) {
	src, results := built(t)
	b := New(Config{Source: src, Platforms: []v1.Platform{native}, WorkDir: t.TempDir()})
	for _, spec := range image.Specs() {
		res, err := b.Build(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != results[spec.Name].Digest {
			t.Errorf("%s: second build digest %s, first %s", spec.Name, res.Digest, results[spec.Name].Digest)
		}
	}
}

// unpackFiles returns the contents of the named files of img.
func unpackFiles(t *testing.T, img v1.Image, names ...string) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := "/" + path.Clean(h.Name); slices.Contains(names, name) {
			if out[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(out) != len(names) {
		t.Fatalf("image lacks some of %v", names)
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
