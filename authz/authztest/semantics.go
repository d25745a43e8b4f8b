package authztest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// SemanticsFile is one data file of the semantics suite: policies (Istio
// YAML, several documents), an optional MeshConfig, and the requests
// judged against them.
type SemanticsFile struct {
	Policies string `yaml:"policies"`
	Mesh     string `yaml:"mesh"`
	Cases    []Case `yaml:"cases"`
}

// Case is one request and its expected decision.
type Case struct {
	Name     string            `yaml:"name"`
	NS       string            `yaml:"ns"`
	Labels   map[string]string `yaml:"labels"`
	Req      Request           `yaml:"req"`
	Allow    bool              `yaml:"allow"`
	By       string            `yaml:"by"`     // deciding rule, if any
	Reason   string            `yaml:"reason"` // checked when set
	Audit    []string          `yaml:"audit"`
	Shadow   *bool             `yaml:"shadow"` // dry-run verdict, when set
	NoRBAC   bool              `yaml:"norbac"` // not expressible in RBAC (CUSTOM rego)
	Why      string            `yaml:"why"`
	Explains string            `yaml:"explains"`
}

// Request is a case's request attributes; empty fields take each
// consumer's defaults.
type Request struct {
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

// SemanticsDir is the suite's directory, found from this file's location
// so every package's tests read the same files.
func SemanticsDir() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "testdata", "semantics")
}

// LoadSemantics decodes every suite file strictly (unknown fields fail),
// keyed by file name without ".yaml".
func LoadSemantics(tb testing.TB) map[string]SemanticsFile {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(SemanticsDir(), "*.yaml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no semantics files in %s: %v", SemanticsDir(), err)
	}
	out := map[string]SemanticsFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var sf SemanticsFile
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&sf); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = sf
	}
	return out
}
