package file

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wardmesh/ward/mesh/schema"
)

// Defaults for Limits.
const (
	DefaultMaxFileBytes = 8 << 20
	DefaultMaxTreeBytes = 64 << 20
)

// Limits bounds what loading a config tree may cost. Zero fields take the
// defaults.
type Limits struct {
	// MaxFileBytes bounds one file; a larger one is rejected (its last
	// good objects stay).
	MaxFileBytes int64
	// MaxTreeBytes bounds all config files together; a tree over it is
	// refused as a whole and the last good config keeps serving.
	MaxTreeBytes int64
	// YAML bounds each document's bytes and nodes.
	YAML schema.Limits
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxTreeBytes <= 0 {
		l.MaxTreeBytes = DefaultMaxTreeBytes
	}
	return l
}

// TreeTooLargeError refuses a whole load: the config files add up to more
// than MaxTreeBytes.
type TreeTooLargeError struct {
	Dir  string
	File string // the file that crossed the bound
	Max  int64
}

func (e *TreeTooLargeError) Error() string {
	return fmt.Sprintf("config tree %s is larger than %d bytes (--config-max-bytes) at %s; nothing from this load was applied", e.Dir, e.Max, e.File)
}

// Fingerprint identifies one observed version of a file, for the
// stability check: a file is applied only when two observations at least
// the quiet period apart agree.
type Fingerprint struct {
	Size    int64
	ModTime time.Time
	SHA256  [32]byte
}

// reader reads config files under one root: regular files only, through
// symlinks only when they resolve inside the tree, without blocking on
// FIFOs and never past the size bounds.
type reader struct {
	root     string // as given
	rootReal string // symlinks resolved
	lim      Limits
	total    int64
}

func newReader(root string, lim Limits) (*reader, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("load config dir %s: %w", root, err)
	}
	return &reader{root: root, rootReal: real, lim: lim.withDefaults()}, nil
}

// read returns the content and fingerprint of path. A *TreeTooLargeError
// means the whole load must stop; any other error is about this file.
func (r *reader) read(path, name string) ([]byte, Fingerprint, error) {
	target, err := r.resolve(path)
	if err != nil {
		return nil, Fingerprint{}, err
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer. fstat then refuses anything but a regular file.
	f, err := os.OpenFile(target, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, Fingerprint{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Fingerprint{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, Fingerprint{}, fmt.Errorf("not a regular file (%s); only regular files are read", fileType(fi.Mode()))
	}
	data, err := r.readBounded(f, fi.Size(), name)
	if err != nil {
		return nil, Fingerprint{}, err
	}
	return data, Fingerprint{Size: int64(len(data)), ModTime: fi.ModTime(), SHA256: sha256.Sum256(data)}, nil
}

// readBounded reads at most the file and tree bounds allow; the stat size
// is only a first check, since a file can grow or lie (/proc, devices).
func (r *reader) readBounded(f io.Reader, statSize int64, name string) ([]byte, error) {
	left := r.lim.MaxTreeBytes - r.total
	if statSize > r.lim.MaxFileBytes {
		return nil, fmt.Errorf("file is larger than %d bytes", r.lim.MaxFileBytes)
	}
	if statSize > left {
		return nil, &TreeTooLargeError{Dir: r.root, File: name, Max: r.lim.MaxTreeBytes}
	}
	limit := min(r.lim.MaxFileBytes, left)
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		if limit == r.lim.MaxFileBytes {
			return nil, fmt.Errorf("file is larger than %d bytes", r.lim.MaxFileBytes)
		}
		return nil, &TreeTooLargeError{Dir: r.root, File: name, Max: r.lim.MaxTreeBytes}
	}
	r.total += int64(len(data))
	return data, nil
}

// resolve returns the path to open: path itself, or for a symlink its
// target, which must stay inside the config tree. Kubernetes ConfigMap
// volumes are such links (x.yaml → ..data/x.yaml, ..data → ..2026_…).
func (r *reader) resolve(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return path, nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("symlink: %w", err)
	}
	rel, err := filepath.Rel(r.rootReal, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("symlink resolves to %s, outside the config tree %s; links may only point inside it", target, r.rootReal)
	}
	return target, nil
}

func fileType(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	}
	return m.Type().String()
}

// isTreeTooLarge reports whether err refuses the whole load.
func isTreeTooLarge(err error) bool {
	var e *TreeTooLargeError
	return errors.As(err, &e)
}
