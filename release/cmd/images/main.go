// Command images builds Ward's container images without a Docker engine
// (`make images`): an OCI image index per image (linux/amd64 and
// linux/arm64 by default) written as an OCI layout under -out, an SPDX
// SBOM per platform beside it, and -out/images.json listing every image's
// reference pinned by digest. With -push the indexes are also pushed to
// <prefix>/<name>:<version>. See docs/release.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wardmesh/ward/release/image"
	"github.com/wardmesh/ward/release/image/oci"
)

type options struct {
	dir, out, registry, push, version, licenses string
	platforms, images                           string
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", ".", "module root (the checkout) to build from")
	flag.StringVar(&o.out, "out", "_out/images", "output directory")
	flag.StringVar(&o.registry, "registry", image.DefaultRepositoryPrefix, "repository prefix the references name (not pushed)")
	flag.StringVar(&o.push, "push", "", "repository prefix to push to (overrides -registry), e.g. registry.example.com/wardmesh")
	flag.StringVar(&o.version, "version", "", "version and tag (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.licenses, "licenses", "", "org.opencontainers.image.licenses (default NOASSERTION)")
	flag.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	flag.StringVar(&o.images, "images", "ward,ward-agent", "comma-separated images to build")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	src, err := image.GitSource(ctx, o.dir, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	if o.version != "" {
		src.Version = o.version
	}
	if o.licenses != "" {
		src.Licenses = o.licenses
	}
	specs, platforms, err := selection(o)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "ward-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	b := oci.New(oci.Config{Source: src, Platforms: platforms, WorkDir: work, Log: log})
	prefix := strings.TrimSuffix(o.registry, "/")
	if o.push != "" {
		prefix = strings.TrimSuffix(o.push, "/")
	}
	m := &image.Manifest{}
	for _, spec := range specs {
		ref, err := buildOne(ctx, b, o, spec, prefix, tag(src.Version), platforms)
		if err != nil {
			return err
		}
		m.Images = append(m.Images, ref)
		fmt.Printf("%s\t%s:%s\t%s\n", ref.Name, ref.Repository, ref.Tag, ref.Reference)
	}
	path := filepath.Join(o.out, "images.json")
	if err := image.WriteManifest(path, m); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}

// buildOne builds spec, writes its layout and pushes it when asked.
func buildOne(ctx context.Context, b *oci.Builder, o options, spec image.Spec, prefix, tag string, platforms []v1.Platform) (image.Ref, error) {
	start := time.Now()
	res, err := b.Build(ctx, spec)
	if err != nil {
		return image.Ref{}, err
	}
	dir := filepath.Join(o.out, spec.Name)
	if err := oci.WriteLayout(dir, tag, res); err != nil {
		return image.Ref{}, err
	}
	repo := prefix + "/" + spec.Name
	ref := image.Ref{Name: spec.Name, Repository: repo, Tag: tag, Digest: res.Digest.String(),
		Reference: repo + "@" + res.Digest.String(), Layout: dir}
	for _, p := range platforms {
		ref.Platforms = append(ref.Platforms, p.String())
	}
	if o.push != "" {
		if _, err := oci.Push(ctx, repo, tag, res); err != nil {
			return image.Ref{}, err
		}
		ref.Pushed = true
	}
	slog.Info("image ready", "image", spec.Name, "digest", ref.Digest, "layout", dir, "pushed", ref.Pushed, "took", time.Since(start).Round(time.Millisecond))
	return ref, nil
}

// selection resolves -images and -platforms.
func selection(o options) ([]image.Spec, []v1.Platform, error) {
	var specs []image.Spec
	for _, n := range strings.Split(o.images, ",") {
		i := slices.IndexFunc(image.Specs(), func(s image.Spec) bool { return s.Name == strings.TrimSpace(n) })
		if i < 0 {
			return nil, nil, fmt.Errorf("unknown image %q (known: ward, ward-agent)", n)
		}
		specs = append(specs, image.Specs()[i])
	}
	var platforms []v1.Platform
	for _, s := range strings.Split(o.platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, nil, fmt.Errorf("invalid platform %q (want os/arch)", s)
		}
		platforms = append(platforms, *p)
	}
	return specs, platforms, nil
}

var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// tag makes a version a valid image tag.
func tag(version string) string {
	t := badTagChars.ReplaceAllString(version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
