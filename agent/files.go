package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/wardmesh/ward/internal/atomicfile"
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

// writeAtomic writes the agent's files: readers (grpc's file watcher, Envoy)
// see the old or the new content, never a mix.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode, 0o755)
}
