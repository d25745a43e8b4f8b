// Package atomicfile writes files so that readers see the old content or
// the new, never a mix: a synced temp file in the same directory, renamed
// over the target. The CA's state and tokens and the agent's certificate
// files use it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to path with mode, creating the directory with dirMode.
func Write(path string, b []byte, mode, dirMode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
