package semantics

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// suiteFile is one data file of authz/testdata/semantics (the format of
// authz/semantics_test.go; fields this suite does not use are kept so
// decoding stays strict).
type suiteFile struct {
	Policies string      `yaml:"policies"`
	Mesh     string      `yaml:"mesh"`
	Cases    []suiteCase `yaml:"cases"`
}

type suiteCase struct {
	Name     string            `yaml:"name"`
	NS       string            `yaml:"ns"`
	Labels   map[string]string `yaml:"labels"`
	Req      suiteRequest      `yaml:"req"`
	Allow    bool              `yaml:"allow"`
	By       string            `yaml:"by"`
	Reason   string            `yaml:"reason"`
	Audit    []string          `yaml:"audit"`
	Shadow   *bool             `yaml:"shadow"`
	NoRBAC   bool              `yaml:"norbac"`
	Why      string            `yaml:"why"`
	Explains string            `yaml:"explains"`
}

type suiteRequest struct {
	Principal string            `yaml:"principal"`
	IP        string            `yaml:"ip"`
	RemoteIP  string            `yaml:"remoteIP"`
	DstIP     string            `yaml:"dstIP"`
	Port      uint32            `yaml:"port"`
	SNI       string            `yaml:"sni"`
	TCP       bool              `yaml:"tcp"`
	Method    string            `yaml:"method"`
	Path      string            `yaml:"path"`
	Host      string            `yaml:"host"`
	Headers   map[string]string `yaml:"headers"`
	Claims    map[string]any    `yaml:"claims"`
}

func loadSuite(t *testing.T) map[string]suiteFile { return loadSuiteTB(t) }

func loadSuiteTB(t testing.TB) map[string]suiteFile {
	t.Helper()
	files, err := filepath.Glob("../../authz/testdata/semantics/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no semantics files: %v", err)
	}
	out := map[string]suiteFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sf suiteFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&sf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = sf
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
