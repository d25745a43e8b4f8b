package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/wardmesh/ward/release/image"
)

// goModVersion is the version go.mod requires of module path.
func goModVersion(t *testing.T, dir, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(path) + `\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("go.mod requires no %s", path)
	}
	return string(m[1])
}

// TestSBOM reads the SBOM inside each image and checks it against go.mod:
// the real modules with their versions and go.sum hashes, the standard
// library, and the binary's own digest; ward-agent's lists no OPA.
func TestSBOM(t *testing.T) {
	src, results := built(t)
	grpcVersion := goModVersion(t, src.Dir, "google.golang.org/grpc")
	for _, spec := range image.Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			res := results[spec.Name]
			fs := unpackFiles(t, nativeImage(t, res), image.SBOMPath(spec), spec.Entrypoint())
			if string(fs[image.SBOMPath(spec)]) != string(res.SBOMs[0].JSON) {
				t.Error("the SBOM in the image differs from the one the build returned")
			}
			var doc image.SPDX
			if err := json.Unmarshal(fs[image.SBOMPath(spec)], &doc); err != nil {
				t.Fatal(err)
			}
			if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != src.Created.UTC().Format(time.RFC3339) {
				t.Errorf("spdx header: %+v", doc)
			}
			g, ok := doc.Package("google.golang.org/grpc")
			if !ok || g.VersionInfo != grpcVersion || len(g.Checksums) != 1 || len(g.ExternalRefs) != 1 ||
				g.ExternalRefs[0].ReferenceLocator != "pkg:golang/google.golang.org/grpc@"+grpcVersion {
				t.Errorf("grpc package = %+v, want version %s from go.mod with checksum and purl", g, grpcVersion)
			}
			if std, ok := doc.Package("stdlib"); !ok || std.VersionInfo == "" {
				t.Errorf("no stdlib package: %+v", std)
			}
			bin, ok := doc.Package(spec.Name)
			if !ok || len(bin.Checksums) != 1 || bin.Checksums[0].ChecksumValue != sha256Hex(fs[spec.Entrypoint()]) {
				t.Errorf("binary package %+v: want the SHA-256 of %s", bin, spec.Entrypoint())
			}
			_, hasOPA := doc.Package("github.com/open-policy-agent/opa")
			if want := spec.Name == "ward"; hasOPA != want {
				t.Errorf("SBOM lists OPA: %v, want %v (ward links it, ward-agent must not)", hasOPA, want)
			}
			if len(doc.Relationships) != len(doc.Packages) {
				t.Errorf("%d relationships for %d packages", len(doc.Relationships), len(doc.Packages))
			}
		})
	}
}
