package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wardmesh/ward/release/image"
)

// entry is one file or directory of a layer.
type entry struct {
	name     string // absolute path in the image
	mode     int64  // permission bits (and sticky)
	uid, gid int
	dir      bool
	data     []byte
}

// baseEntries is the distroless-style base: root and nonroot in
// /etc/passwd and /etc/group (with no login shell), nsswitch.conf for Go's
// resolver, nonroot's home and a world-writable /tmp.
func baseEntries() []entry {
	return []entry{
		{name: "/etc", mode: 0o755, dir: true},
		{name: "/etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", image.NonRoot, image.NonRoot))},
		{name: "/etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", image.NonRoot))},
		{name: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "/home", mode: 0o755, dir: true},
		{name: "/home/nonroot", mode: 0o700, dir: true, uid: image.NonRoot, gid: image.NonRoot},
		{name: "/tmp", mode: 0o1777, dir: true},
	}
}

// appEntries is the binary at spec's entrypoint and its SBOM.
func appEntries(spec image.Spec, binary, sbom []byte) []entry {
	return []entry{
		{name: "/usr", mode: 0o755, dir: true},
		{name: "/usr/local", mode: 0o755, dir: true},
		{name: image.BinaryDir, mode: 0o755, dir: true},
		{name: spec.Entrypoint(), mode: 0o755, data: binary},
		{name: "/usr/share", mode: 0o755, dir: true},
		{name: image.SBOMDir, mode: 0o755, dir: true},
		{name: image.SBOMPath(spec), mode: 0o644, data: sbom},
	}
}

// layer makes an OCI layer of entries, every timestamp at mtime.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := writeEntry(tw, e, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

func writeEntry(tw *tar.Writer, e entry, mtime time.Time) error {
	h := &tar.Header{
		Name: strings.TrimPrefix(path.Clean(e.name), "/"), Mode: e.mode, Uid: e.uid, Gid: e.gid,
		Uname: userName(e.uid), Gname: userName(e.gid), ModTime: mtime, Format: tar.FormatUSTAR,
		Typeflag: tar.TypeReg, Size: int64(len(e.data)),
	}
	if e.dir {
		h.Name, h.Typeflag, h.Size = h.Name+"/", tar.TypeDir, 0
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("layer entry %s: %w", e.name, err)
	}
	if _, err := tw.Write(e.data); err != nil {
		return fmt.Errorf("layer entry %s: %w", e.name, err)
	}
	return nil
}

func userName(id int) string {
	if id == image.NonRoot {
		return "nonroot"
	}
	return "root"
}
