// Package rotate owns size-bounded log files: a File is appended to until
// the next write would pass MaxBytes, then shifted to Path.1 … Path.N
// (the oldest dropped), so a log never takes more than
// (MaxFiles+1) × MaxBytes on disk.
package rotate

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// File is a rotating append-only file, safe for concurrent use. Files are
// created 0600: logs of calls are not for every local user.
type File struct {
	path     string
	maxBytes int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (or creates) path for appending; maxBytes ≤ 0 means 64 MiB,
// maxFiles ≤ 0 means 3.
func Open(path string, maxBytes int64, maxFiles int) (*File, error) {
	if path == "" {
		return nil, errors.New("rotate: empty path")
	}
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	if maxFiles <= 0 {
		maxFiles = 3
	}
	r := &File{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *File) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", r.path, err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends b whole, rotating first when it would pass MaxBytes.
// Callers write complete records (lines) so that no record is split
// across files.
func (r *File) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, errors.New("rotate: write to a closed file")
	}
	if r.size > 0 && r.size+int64(len(b)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(b)
	r.size += int64(n)
	return n, err
}

// rotate shifts Path.i to Path.i+1 (dropping the oldest) and reopens.
func (r *File) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", r.path, err)
	}
	r.f = nil
	os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", r.path, i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d", r.path, i+1)); err != nil {
				return fmt.Errorf("rotate %s: %w", from, err)
			}
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	return r.open()
}

// Close closes the file.
func (r *File) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
