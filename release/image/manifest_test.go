package image

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Images: []Ref{
		{Name: "ward", Repository: "ghcr.io/wardmesh/ward", Tag: "v1", Digest: testDigest, Reference: "ghcr.io/wardmesh/ward@" + testDigest, Platforms: []string{"linux/amd64"}},
		{Name: "ward-agent", Repository: "ghcr.io/wardmesh/ward-agent", Tag: "v1", Digest: testDigest, Reference: "ghcr.io/wardmesh/ward-agent@" + testDigest},
	}}
	path := filepath.Join(t.TempDir(), "images.json")
	if err := WriteManifest(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if r, err := got.Lookup("ward-agent"); err != nil || r.Reference != "ghcr.io/wardmesh/ward-agent@"+testDigest {
		t.Errorf("Lookup(ward-agent) = %+v %v", r, err)
	}
	if _, err := got.Lookup("envoy"); err == nil {
		t.Error("Lookup(envoy) found an image")
	}
}

func TestParseManifestRejects(t *testing.T) {
	ok := `{"name":"ward","repository":"ghcr.io/wardmesh/ward","tag":"v1","digest":"` + testDigest + `","reference":"ghcr.io/wardmesh/ward@` + testDigest + `"}`
	cases := map[string]string{
		"unknown field":      `{"images":[` + strings.Replace(ok, `"tag"`, `"tags"`, 1) + `]}`,
		"short digest":       `{"images":[` + strings.ReplaceAll(ok, testDigest, "sha256:abc") + `]}`,
		"tag as reference":   `{"images":[` + strings.Replace(ok, "@"+testDigest, ":v1", 1) + `]}`,
		"other repository":   `{"images":[` + strings.Replace(ok, `"reference":"ghcr.io/wardmesh/ward@`, `"reference":"evil.io/ward@`, 1) + `]}`,
		"duplicate":          `{"images":[` + ok + `,` + ok + `]}`,
		"no name":            `{"images":[` + strings.Replace(ok, `"name":"ward"`, `"name":""`, 1) + `]}`,
		"uppercase registry": `{"images":[` + strings.ReplaceAll(ok, "ghcr.io/wardmesh/ward", "GHCR.io/wardmesh/ward") + `]}`,
		"not json":           `images: []`,
	}
	if _, err := ParseManifest([]byte(`{"images":[` + ok + `]}`)); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	for name, in := range cases {
		if _, err := ParseManifest([]byte(in)); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}
