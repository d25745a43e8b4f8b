package oci

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"log/slog"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wardmesh/ward/release/image"
)

// Config configures a Builder.
type Config struct {
	Source    image.Source
	Platforms []v1.Platform // default Platforms
	// WorkDir receives the binaries (<os>-<arch>/<name>); required.
	WorkDir string
	Go      string // the go command; default "go"
	Log     *slog.Logger
}

// Builder builds Ward's images from one source.
type Builder struct {
	cfg Config
}

// New returns a Builder, filling Config's defaults.
func New(cfg Config) *Builder {
	if len(cfg.Platforms) == 0 {
		cfg.Platforms = Platforms
	}
	if cfg.Go == "" {
		cfg.Go = "go"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Builder{cfg: cfg}
}

// Result is one built image: its multi-platform index and, per platform,
// the SBOM of the binary inside.
type Result struct {
	Spec   image.Spec
	Index  v1.ImageIndex
	Digest v1.Hash // the index's digest: what a reference pins
	SBOMs  []PlatformSBOM
}

// PlatformSBOM is the SBOM (SPDX JSON) of one platform's image.
type PlatformSBOM struct {
	Platform v1.Platform
	JSON     []byte
}

// Build builds spec for every platform and gathers the images into an
// OCI image index carrying the same annotations as each image.
func (b *Builder) Build(ctx context.Context, spec image.Spec) (*Result, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := &Result{Spec: spec}
	for _, p := range b.cfg.Platforms {
		start := time.Now()
		img, sbom, err := b.Image(ctx, spec, p)
		if err != nil {
			return nil, err
		}
		b.cfg.Log.Info("image built", "image", spec.Name, "platform", p.String(), "took", time.Since(start).Round(time.Millisecond))
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		res.SBOMs = append(res.SBOMs, PlatformSBOM{Platform: p, JSON: sbom})
	}
	res.Index = mutate.Annotations(idx, image.Labels(spec, b.cfg.Source)).(v1.ImageIndex)
	d, err := res.Index.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: index digest: %w", spec.Name, err)
	}
	res.Digest = d
	return res, nil
}

// Image builds spec's image for one platform and returns it with the
// SBOM it carries.
func (b *Builder) Image(ctx context.Context, spec image.Spec, p v1.Platform) (v1.Image, []byte, error) {
	src := b.cfg.Source
	path, err := buildBinary(ctx, b.cfg.Go, src, spec, p, b.cfg.WorkDir)
	if err != nil {
		return nil, nil, err
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: read build info: %w", spec.Name, err)
	}
	sbom, err := image.NewSBOM(spec, src, bin, bi).JSON()
	if err != nil {
		return nil, nil, err
	}
	img, err := assemble(spec, src, p, bin, sbom)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s for %s: %w", spec.Name, p.String(), err)
	}
	return img, sbom, nil
}

// assemble makes the image: the base layer, the binary-and-SBOM layer,
// and a config running the binary as nonroot, every time src.Created.
func assemble(spec image.Spec, src image.Source, p v1.Platform, bin, sbom []byte) (v1.Image, error) {
	base, err := layer(baseEntries(), src.Created)
	if err != nil {
		return nil, err
	}
	app, err := layer(appEntries(spec, bin, sbom), src.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: src.Created}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "ward release/image: /etc/passwd, /etc/group, /tmp, /home/nonroot", Comment: "base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: "ward release/image: go build " + spec.Package + "; " + image.SBOMPath(spec), Comment: spec.Name}})
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created, cf.OS, cf.Architecture, cf.Variant = created, p.OS, p.Architecture, p.Variant
	labels := image.Labels(spec, src)
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", image.NonRoot, image.NonRoot),
		Entrypoint: []string{spec.Entrypoint()},
		Env:        []string{"PATH=" + image.BinaryDir, "HOME=/home/nonroot"},
		WorkingDir: "/home/nonroot",
		Labels:     labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}
