package cni_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardmesh/ward/node/cni"
)

func installDirs(t *testing.T, name, conf string) cni.InstallConfig {
	t.Helper()
	dir := t.TempDir()
	bin, confDir := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{bin, confDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "ward")
	if err := os.WriteFile(exe, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, name), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// A later config the runtime does not use is left alone.
	if err := os.WriteFile(filepath.Join(confDir, "99-other.conflist"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return cni.InstallConfig{Binary: exe, BinDir: bin, ConfDir: confDir, Socket: "/var/run/ward/cni.sock", FailClosed: true, ExcludeNamespaces: []string{"kube-system", "ward-system"}}
}

type conflist struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Plugins    []map[string]any `json:"plugins"`
}

func readList(t *testing.T, path string) conflist {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l conflist
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return l
}

func TestInstallChainsAfterThePrimaryPluginIdempotently(t *testing.T) {
	cfg := installDirs(t, "10-calico.conflist", `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico","mtu":1440},{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	path, err := cni.Install(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if _, err := cni.Install(cfg); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if string(first) != string(again) {
		t.Errorf("second install changed the config:\n%s\n→\n%s", first, again)
	}
	l := readList(t, path)
	if len(l.Plugins) != 3 || l.Plugins[0]["type"] != "calico" || l.Plugins[0]["mtu"] != 1440.0 || l.Plugins[2]["type"] != "ward-cni" {
		t.Fatalf("plugins = %v, want calico, portmap, ward-cni", l.Plugins)
	}
	if w := l.Plugins[2]; w["socket"] != "/var/run/ward/cni.sock" || w["failClosed"] != true || len(w["excludeNamespaces"].([]any)) != 2 {
		t.Errorf("ward-cni entry = %v", w)
	}
	if fi, err := os.Stat(filepath.Join(cfg.BinDir, "ward-cni")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("binary: %v %v", fi, err)
	}
}

func TestInstallTurnsASinglePluginConfIntoAList(t *testing.T) {
	cfg := installDirs(t, "10-bridge.conf", `{"cniVersion":"0.4.0","name":"bridge","type":"bridge","bridge":"cni0"}`)
	path, err := cni.Install(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "10-bridge.conflist" {
		t.Errorf("patched %s, want 10-bridge.conflist", path)
	}
	if _, err := os.Stat(filepath.Join(cfg.ConfDir, "10-bridge.conf")); !os.IsNotExist(err) {
		t.Errorf("the .conf stays (%v): the runtime would still pick it", err)
	}
	l := readList(t, path)
	if l.CNIVersion != "0.4.0" || l.Name != "bridge" || len(l.Plugins) != 2 || l.Plugins[0]["bridge"] != "cni0" || l.Plugins[0]["name"] != nil {
		t.Errorf("list = %+v", l)
	}
}

func TestInstallWaitsForThePrimaryConfig(t *testing.T) {
	cfg := installDirs(t, "README", "not a config")
	os.Remove(filepath.Join(cfg.ConfDir, "99-other.conflist"))
	if _, err := cni.Install(cfg); err == nil {
		t.Fatal("install without a network config succeeded")
	}
}
