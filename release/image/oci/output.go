package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WriteLayout replaces dir with an OCI image layout holding res's index,
// named tag (org.opencontainers.image.ref.name), and writes each
// platform's SBOM beside it as <dir>.<os>-<arch>.spdx.json.
func WriteLayout(dir, tag string, res *Result) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(res.Index, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	for _, s := range res.SBOMs {
		path := fmt.Sprintf("%s.%s-%s.spdx.json", filepath.Clean(dir), s.Platform.OS, s.Platform.Architecture)
		if err := os.WriteFile(path, s.JSON, 0o644); err != nil {
			return fmt.Errorf("write sbom: %w", err)
		}
	}
	return nil
}

// Push writes res's index (every platform's image) to repository:tag and
// returns the reference pinned by digest. Credentials come from the
// Docker config (~/.docker/config.json and its helpers), as with docker
// push; opts add or override remote options (a transport in tests).
func Push(ctx context.Context, repository, tag string, res *Result, opts ...remote.Option) (string, error) {
	ref, err := name.NewTag(repository + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", res.Spec.Name, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(ref, res.Index, opts...); err != nil {
		return "", fmt.Errorf("push %s to %s: %w", res.Spec.Name, ref, err)
	}
	return repository + "@" + res.Digest.String(), nil
}
