package image

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DefaultSourceURL is org.opencontainers.image.source.
const DefaultSourceURL = "https://github.com/wardmesh/ward"

// Source is what every image of a release is built from.
type Source struct {
	// Dir is the module root (the checkout).
	Dir string
	// Version tags the images and is stamped into the binaries.
	Version string
	// Revision is the full VCS commit, "" when unknown.
	Revision string
	// CommitTime is the revision's commit time and Modified whether the
	// checkout differs from it; stamped into the binaries (ward version).
	CommitTime time.Time
	Modified   bool
	// Created is every timestamp in the images: files, history, config
	// and the created label.
	Created time.Time
	// URL is the source repository's address.
	URL string
	// Licenses is org.opencontainers.image.licenses (an SPDX expression).
	Licenses string
}

// GitSource describes the checkout at dir from git: the HEAD commit, a
// version from `git describe --tags --always --dirty`, and as creation
// time sourceDateEpoch (the SOURCE_DATE_EPOCH convention: Unix seconds)
// when given, else the commit time. Without git (or outside a checkout)
// the version is "dev", the revision empty and the time the Unix epoch.
func GitSource(ctx context.Context, dir, sourceDateEpoch string) (Source, error) {
	s := Source{Dir: dir, Version: "dev", Created: time.Unix(0, 0).UTC(), URL: DefaultSourceURL, Licenses: "NOASSERTION"}
	if rev, err := git(ctx, dir, "rev-parse", "HEAD"); err == nil {
		s.Revision = rev
		if v, err := git(ctx, dir, "describe", "--tags", "--always", "--dirty", "--abbrev=12"); err == nil {
			s.Version = v
		}
		if ct, err := git(ctx, dir, "log", "-1", "--format=%ct"); err == nil {
			if s.CommitTime, err = unixTime(ct); err != nil {
				return Source{}, fmt.Errorf("commit time: %w", err)
			}
			s.Created = s.CommitTime
		}
		// As the Go toolchain's vcs.modified: untracked files count.
		if st, err := git(ctx, dir, "status", "--porcelain"); err == nil {
			s.Modified = st != ""
		}
	}
	if sourceDateEpoch != "" {
		t, err := unixTime(sourceDateEpoch)
		if err != nil {
			return Source{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		s.Created = t
	}
	return s, nil
}

func unixTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse unix time %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
