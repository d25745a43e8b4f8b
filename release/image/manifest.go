package image

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// DefaultRepositoryPrefix is where Ward's images are published.
const DefaultRepositoryPrefix = "ghcr.io/wardmesh"

// Manifest is images.json: the images `make images` built, each pinned
// by digest. The installer (`ward manifest generate --images`) and the
// sidecar injector take image references from it.
type Manifest struct {
	Images []Ref `json:"images"`
}

// Ref is one built image.
type Ref struct {
	Name       string `json:"name"`       // "ward", "ward-agent"
	Repository string `json:"repository"` // "ghcr.io/wardmesh/ward"
	Tag        string `json:"tag"`        // the version
	Digest     string `json:"digest"`     // the image index's: "sha256:<64 hex>"
	Reference  string `json:"reference"`  // Repository + "@" + Digest: what to deploy
	// Platforms the index holds ("linux/amd64"), Layout the OCI layout
	// directory it was written to, and Pushed whether it was pushed to
	// Repository; informational.
	Platforms []string `json:"platforms,omitempty"`
	Layout    string   `json:"layout,omitempty"`
	Pushed    bool     `json:"pushed,omitempty"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Validate checks that r names an image pinned by a well-formed digest and
// that its reference is its repository at that digest.
func (r Ref) Validate() error {
	switch {
	case r.Name == "":
		return fmt.Errorf("image without a name")
	case r.Repository == "" || strings.ContainsAny(r.Repository, "@ ") || strings.ToLower(r.Repository) != r.Repository:
		return fmt.Errorf("image %s: invalid repository %q", r.Name, r.Repository)
	case !digestRE.MatchString(r.Digest):
		return fmt.Errorf("image %s: invalid digest %q (want sha256:<64 hex>)", r.Name, r.Digest)
	case r.Reference != r.Repository+"@"+r.Digest:
		return fmt.Errorf("image %s: reference %q is not %s@%s", r.Name, r.Reference, r.Repository, r.Digest)
	}
	return nil
}

// Lookup returns the image called name.
func (m *Manifest) Lookup(name string) (Ref, error) {
	for _, r := range m.Images {
		if r.Name == name {
			return r, nil
		}
	}
	return Ref{}, fmt.Errorf("images manifest: no image %q", name)
}

// Validate checks every image and that no name repeats.
func (m *Manifest) Validate() error {
	seen := map[string]bool{}
	for _, r := range m.Images {
		if err := r.Validate(); err != nil {
			return err
		}
		if seen[r.Name] {
			return fmt.Errorf("image %s listed twice", r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

// LoadManifest reads and validates an images.json file.
func LoadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read images manifest: %w", err)
	}
	return ParseManifest(b)
}

// ParseManifest decodes and validates images.json content. Unknown fields
// are rejected, so a misspelt key fails instead of leaving a field empty.
func ParseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode images manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("images manifest: %w", err)
	}
	return &m, nil
}

// WriteManifest validates m and writes it to path as indented JSON.
func WriteManifest(path string, m *Manifest) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("images manifest: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode images manifest: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write images manifest: %w", err)
	}
	return nil
}

// ValidDigest reports whether d is an image digest as images.json and
// pinned references carry it: "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }
