package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// Istio's cacerts file names.
const (
	pluginCert  = "ca-cert.pem"
	pluginKey   = "ca-key.pem"
	pluginChain = "cert-chain.pem"
	pluginRoot  = "root-cert.pem"
)

// loadPlugin loads the signing intermediate from PluginDir: ca-cert.pem and
// ca-key.pem sign, cert-chain.pem (optional) carries the intermediates and
// root-cert.pem the trusted roots (several allowed).
func (c *CA) loadPlugin() error {
	files, err := readPluginFiles(c.cfg.PluginDir)
	if err != nil {
		return err
	}
	a, err := c.pluginAuthority(files)
	if err != nil {
		return fmt.Errorf("plug-in ca %s: %w", c.cfg.PluginDir, err)
	}
	c.pluginSum = pluginDigest(files)
	c.publish(a)
	c.log.Info("loaded plug-in CA", "dir", c.cfg.PluginDir, "signer", a.signer.Subject.String(), "roots", len(a.roots))
	return nil
}

func readPluginFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, n := range []string{pluginCert, pluginKey, pluginChain, pluginRoot} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) && n == pluginChain {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("plug-in ca: %w", err)
		}
		files[n] = b
	}
	return files, nil
}

func pluginDigest(files map[string][]byte) [32]byte {
	h := sha256.New()
	for _, n := range []string{pluginCert, pluginKey, pluginChain, pluginRoot} {
		h.Write(files[n])
		h.Write([]byte{0})
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func (c *CA) pluginAuthority(files map[string][]byte) (*authority, error) {
	certs, err := parseCertsPEM(files[pluginCert])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pluginCert, err)
	}
	signer := certs[0]
	key, err := parseKeyPEM(files[pluginKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pluginKey, err)
	}
	roots, err := parseCertsPEM(files[pluginRoot])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pluginRoot, err)
	}
	var chain []*x509.Certificate
	if b := files[pluginChain]; len(b) > 0 {
		cc, err := parseCertsPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pluginChain, err)
		}
		for _, x := range cc {
			if !bytes.Equal(x.Raw, signer.Raw) && !isSelfSigned(x) {
				chain = append(chain, x)
			}
		}
	}
	return newAuthority(c.td, c.clock.Now(), signer, key, chain, roots)
}

// ReloadPlugin re-reads PluginDir and publishes the new authority if the
// files changed and are valid; on error the previous authority stays.
func (c *CA) ReloadPlugin() error {
	files, err := readPluginFiles(c.cfg.PluginDir)
	if err != nil {
		return err
	}
	sum := pluginDigest(files)
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum == c.pluginSum {
		return nil
	}
	a, err := c.pluginAuthority(files)
	if err != nil {
		return fmt.Errorf("reload plug-in ca %s: %w", c.cfg.PluginDir, err)
	}
	c.pluginSum = sum
	c.publish(a)
	c.log.Info("reloaded plug-in CA", "signer", a.signer.Subject.String(), "roots", len(a.roots))
	return nil
}

// watchPlugin reloads the plug-in CA whenever its directory changes.
func (c *CA) watchPlugin(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch plug-in ca: %w", err)
	}
	defer w.Close()
	if err := w.Add(c.cfg.PluginDir); err != nil {
		return fmt.Errorf("watch plug-in ca %s: %w", c.cfg.PluginDir, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			c.log.Warn("watch plug-in ca", "err", err)
		case <-w.Events:
			if err := c.ReloadPlugin(); err != nil {
				c.log.Warn("plug-in ca reload failed; keeping the previous one", "err", err)
			}
		}
	}
}
