package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wardmesh/ward/internal/atomicfile"
)

// PluginType is the plugin's binary name in the CNI bin dir and its
// "type" in the chained network config.
const PluginType = "ward-cni"

// InstallConfig says where and how to install the plugin.
type InstallConfig struct {
	Binary  string // the executable to copy (the running ward binary)
	BinDir  string // /opt/cni/bin
	ConfDir string // /etc/cni/net.d
	// The plugin's settings in the chained config (see NetConf).
	Socket            string
	FailClosed        bool
	ExcludeNamespaces []string
}

// Install copies the binary to <BinDir>/ward-cni and appends Ward to the
// plugin chain of the runtime's network config (the lexically first
// .conflist/.conf/.json in ConfDir, which is the one the runtime uses; a
// single-plugin .conf becomes a .conflist). It is idempotent: an existing
// ward-cni entry is replaced, and an unchanged file is not rewritten. It
// returns the config file it patched.
func Install(cfg InstallConfig) (string, error) {
	if err := copyBinary(cfg.Binary, filepath.Join(cfg.BinDir, PluginType)); err != nil {
		return "", err
	}
	conf, err := primaryConf(cfg.ConfDir)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(conf)
	if err != nil {
		return "", fmt.Errorf("cni install: %w", err)
	}
	out, err := chain(raw, strings.HasSuffix(conf, ".conflist"), cfg)
	if err != nil {
		return "", fmt.Errorf("cni install: %s: %w", conf, err)
	}
	target := strings.TrimSuffix(strings.TrimSuffix(conf, ".conf"), ".json")
	if !strings.HasSuffix(target, ".conflist") {
		target += ".conflist"
	}
	if target == conf && bytes.Equal(out, raw) {
		return conf, nil
	}
	if err := writeAtomic(target, out, 0o644); err != nil {
		return "", err
	}
	if target != conf {
		if err := os.Remove(conf); err != nil {
			return "", fmt.Errorf("cni install: %w", err)
		}
	}
	return target, nil
}

// primaryConf is the network config the runtime loads: the lexically
// first one in dir.
func primaryConf(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("cni install: %w", err)
	}
	for _, e := range ents { // ReadDir sorts by name
		if ext := filepath.Ext(e.Name()); !e.IsDir() && slices.Contains([]string{".conflist", ".conf", ".json"}, ext) {
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("cni install: no network config in %s yet (the primary CNI plugin writes one; Ward chains after it)", dir)
}

// chain returns the config as a plugin list ending with Ward's entry.
func chain(raw []byte, isList bool, cfg InstallConfig) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var plugins []map[string]json.RawMessage
	if isList {
		if err := json.Unmarshal(top["plugins"], &plugins); err != nil {
			return nil, fmt.Errorf("plugins: %w", err)
		}
	} else { // a single plugin: it becomes the first of a list
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, err
		}
		top = map[string]json.RawMessage{"cniVersion": one["cniVersion"], "name": one["name"]}
		delete(one, "cniVersion")
		delete(one, "name")
		plugins = append(plugins, one)
	}
	plugins = slices.DeleteFunc(plugins, func(p map[string]json.RawMessage) bool {
		return string(p["type"]) == `"`+PluginType+`"`
	})
	ours, err := json.Marshal(NetConf{Type: PluginType, Socket: cfg.Socket, FailClosed: &cfg.FailClosed, ExcludeNamespaces: cfg.ExcludeNamespaces})
	if err != nil {
		return nil, err
	}
	var entry map[string]json.RawMessage
	if err := json.Unmarshal(ours, &entry); err != nil {
		return nil, err
	}
	delete(entry, "cniVersion")
	delete(entry, "name")
	plugins = append(plugins, entry)
	if top["plugins"], err = json.Marshal(plugins); err != nil {
		return nil, err
	}
	return json.MarshalIndent(top, "", "  ")
}

func copyBinary(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("cni install: %w", err)
	}
	defer in.Close()
	b, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("cni install: %w", err)
	}
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	return writeAtomic(dst, b, 0o755)
}

// writeAtomic replaces path by a complete file, so the runtime never
// reads or executes half of one.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, b, mode, 0o755); err != nil {
		return fmt.Errorf("cni install: %w", err)
	}
	return nil
}
