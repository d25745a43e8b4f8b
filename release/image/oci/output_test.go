package oci

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestWriteLayout writes an image as an OCI layout, reads it back and
// finds the same index under its tag, with the SBOM beside it.
func TestWriteLayout(t *testing.T) {
	_, results := built(t)
	res := results["ward-agent"]
	dir := filepath.Join(t.TempDir(), "ward-agent")
	if err := WriteLayout(dir, "v1", res); err != nil {
		t.Fatal(err)
	}
	// Again, over the first: the layout is replaced, not appended to.
	if err := WriteLayout(dir, "v1", res); err != nil {
		t.Fatal(err)
	}
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != res.Digest ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("layout index.json = %+v, want one entry %s tagged v1", im.Manifests, res.Digest)
	}
	idx, err := root.ImageIndex(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nativeIndexImage(idx); err != nil {
		t.Fatalf("the layout's index has no readable native image: %v", err)
	}
	b, err := os.ReadFile(dir + ".linux-" + native.Architecture + ".spdx.json")
	if err != nil || string(b) != string(res.SBOMs[0].JSON) {
		t.Errorf("sbom beside the layout: %v", err)
	}
}

// TestPush pushes an image index to an in-process registry on loopback
// (the PUSH= path of `make images`) and reads it back by tag and digest.
func TestPush(t *testing.T) {
	_, results := built(t)
	res := results["ward-agent"]
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/wardmesh/ward-agent"
	ref, err := Push(context.Background(), repo, "v1", res)
	if err != nil {
		t.Fatal(err)
	}
	if ref != repo+"@"+res.Digest.String() {
		t.Errorf("pushed reference %q, want %s@%s", ref, repo, res.Digest)
	}
	for _, r := range []string{repo + ":v1", ref} {
		parsed, err := name.ParseReference(r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(parsed)
		if err != nil {
			t.Fatalf("pull %s: %v", r, err)
		}
		if d, err := idx.Digest(); err != nil || d != res.Digest {
			t.Errorf("pulled %s digest %v %v, want %s", r, d, err, res.Digest)
		}
		if _, err := nativeIndexImage(idx); err != nil {
			t.Errorf("pulled %s: %v", r, err)
		}
	}
}
