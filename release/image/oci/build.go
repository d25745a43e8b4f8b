package oci

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wardmesh/ward/internal/version"
	"github.com/wardmesh/ward/release/image"
)

// Platforms is what a release builds for.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// buildBinary compiles spec's package for platform into dir and returns
// the binary's path. The build is static (CGO_ENABLED=0) and reproducible:
// -trimpath, no build ID, no symbol table, GOFLAGS cleared and the
// micro-architecture levels pinned, so only the source and the Go
// toolchain decide the bytes. The VCS facts are stamped with -X, not by
// the toolchain (-buildvcs=false): the toolchain stamps a clone but not a
// git worktree, which would give the same commit two digests.
func buildBinary(ctx context.Context, goCmd string, src image.Source, spec image.Spec, p v1.Platform, dir string) (string, error) {
	out := filepath.Join(dir, p.OS+"-"+p.Architecture, spec.Name)
	ldflags, err := linkerFlags(src)
	if err != nil {
		return "", err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, spec.Package}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = src.Dir
	cmd.Env = buildEnv(os.Environ(), p)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s for %s/%s: %w\n%s", spec.Package, p.OS, p.Architecture, err, stderr.String())
	}
	return out, nil
}

// linkerFlags strips the binary (no symbol table, DWARF or build ID) and
// stamps the version and VCS facts (revision, commit time, modified) that
// `ward version` prints.
func linkerFlags(src image.Source) (string, error) {
	if src.Version == "" || strings.ContainsAny(src.Version, " \t\n'\"\\") {
		return "", fmt.Errorf("version %q: want a non-empty string without spaces or quotes", src.Version)
	}
	flags := "-s -w -buildid= -X " + version.LinkerVar + "=" + src.Version
	if src.Revision != "" {
		flags += " -X " + version.LinkerVarRevision + "=" + src.Revision
	}
	if !src.CommitTime.IsZero() {
		flags += " -X " + version.LinkerVarRevisionTime + "=" + src.CommitTime.UTC().Format(time.RFC3339)
	}
	if src.Modified {
		flags += " -X " + version.LinkerVarModified + "=true"
	}
	return flags, nil
}

// buildEnv is env with the variables that change a build's output
// replaced by fixed values.
func buildEnv(env []string, p v1.Platform) []string {
	fixed := map[string]string{"CGO_ENABLED": "0", "GOOS": p.OS, "GOARCH": p.Architecture,
		"GOFLAGS": "", "GOAMD64": "v1", "GOARM64": "v8.0", "GOEXPERIMENT": ""}
	out := make([]string, 0, len(env)+len(fixed))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := fixed[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range []string{"CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS", "GOAMD64", "GOARM64", "GOEXPERIMENT"} {
		out = append(out, k+"="+fixed[k])
	}
	return out
}
