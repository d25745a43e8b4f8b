package agent

import (
	"fmt"
	"os"
	"path/filepath"
)

// File names in OutputDir (Istio's names for proxyless gRPC).
const (
	FileCertChain = "cert-chain.pem"
	FileKey       = "key.pem"
	FileRoots     = "root-cert.pem"
	FileBootstrap = "grpc-bootstrap.json"
)

// writeFiles writes the bundle first (so a peer's new root is trusted no
// later than our own new leaf is presented), then the key and chain. Each
// file is replaced atomically.
func (a *Agent) writeFiles(s *SVID) error {
	dir := a.cfg.OutputDir
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{
		{FileRoots, s.BundlePEM, 0o644},
		{FileKey, s.KeyPEM, 0o600},
		{FileCertChain, s.ChainPEM, 0o644},
	} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	if a.cfg.Bootstrap == nil {
		return nil
	}
	b, err := GRPCBootstrap(*a.cfg.Bootstrap, s.ID, dir)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, FileBootstrap), b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", FileBootstrap, err)
	}
	return nil
}

// writeAtomic writes b to a temp file in path's directory, then renames it
// over path, so readers see the old or the new content, never a mix.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
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
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
