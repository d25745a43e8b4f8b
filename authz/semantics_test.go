package authz

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// testTimeout replaces the 50ms production evaluation timeout in tests: on
// a loaded machine (or under -race) a fail-closed timeout is not what the
// tests look for.
const testTimeout = time.Minute

// semanticsFile is one data file of the semantics suite: policies (Istio
// YAML, several documents) and the requests judged against them.
type semanticsFile struct {
	Policies string         `yaml:"policies"`
	Mesh     string         `yaml:"mesh"`
	Cases    []semanticCase `yaml:"cases"`
}

type semanticCase struct {
	Name     string            `yaml:"name"`
	NS       string            `yaml:"ns"`
	Labels   map[string]string `yaml:"labels"`
	Req      caseRequest       `yaml:"req"`
	Allow    bool              `yaml:"allow"`
	By       string            `yaml:"by"`     // deciding rule, if any
	Reason   Reason            `yaml:"reason"` // checked when set
	Audit    []string          `yaml:"audit"`
	Shadow   *bool             `yaml:"shadow"` // dry-run verdict, when set
	NoRBAC   bool              `yaml:"norbac"` // not expressible in RBAC (CUSTOM rego)
	Why      string            `yaml:"why"`
	Explains string            `yaml:"explains"`
}

type caseRequest struct {
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

func (c caseRequest) request() *Request {
	r := &Request{
		Source:      Peer{IP: or(c.IP, "10.0.0.1"), Port: 40000, Principal: c.Principal},
		Destination: Peer{IP: or(c.DstIP, "10.0.0.2"), Port: c.Port},
		RemoteIP:    c.RemoteIP, SNI: c.SNI,
	}
	if r.Destination.Port == 0 {
		r.Destination.Port = 8080
	}
	if !c.TCP {
		r.HTTP = &HTTPRequest{Method: or(c.Method, "GET"), Path: or(c.Path, "/"), Host: or(c.Host, "web.foo.svc"), Headers: c.Headers}
	}
	if c.Claims != nil {
		r.Auth = AuthFromClaims(c.Claims)
	}
	return r
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseConfigs decodes multi-document Istio YAML strictly, as the file
// source does.
func parseConfigs(t testing.TB, src string) []*mesh.Config {
	t.Helper()
	out, _, err := schema.DecodeAll([]byte(src), mesh.Source{})
	if err != nil {
		t.Fatalf("decode policies: %v", err)
	}
	return out
}

func loadSemantics(t *testing.T) map[string]semanticsFile {
	t.Helper()
	files, err := filepath.Glob("testdata/semantics/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no semantics files: %v", err)
	}
	out := map[string]semanticsFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sf semanticsFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&sf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = sf
	}
	return out
}

func meshConfigOf(t testing.TB, src string) mesh.MeshConfig {
	t.Helper()
	var mc mesh.MeshConfig
	if src == "" {
		return mc
	}
	docs, err := schema.SplitYAML([]byte(src))
	if err != nil {
		t.Fatalf("mesh: %v", err)
	}
	dec, err := schema.Decode(docs[0], mesh.Source{})
	if err != nil || dec.MeshConfig == nil {
		t.Fatalf("mesh: %v", err)
	}
	return *dec.MeshConfig
}

// TestSemantics runs every data-driven case through the Rego path.
func TestSemantics(t *testing.T) {
	total := 0
	for name, sf := range loadSemantics(t) {
		snap := mesh.NewSnapshot(meshConfigOf(t, sf.Mesh), parseConfigs(t, sf.Policies))
		eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range sf.Cases {
			total++
			t.Run(strings.TrimSuffix(name, ".yaml")+"/"+c.Name, func(t *testing.T) {
				p, err := eng.For(context.Background(), or(c.NS, "foo"), labelsOr(c.Labels))
				if err != nil {
					t.Fatal(err)
				}
				d, err := p.Decide(context.Background(), c.Req.request())
				if err != nil && c.Reason != ReasonInvalidPolicy && c.Reason != ReasonBadRequest {
					t.Fatalf("decide: %v", err)
				}
				checkDecision(t, c, d)
			})
		}
	}
	if total < 150 {
		t.Errorf("semantics suite has %d cases, want at least 150", total)
	}
}

func labelsOr(l map[string]string) mesh.Labels {
	if l == nil {
		return mesh.Labels{"app": "web"}
	}
	return l
}

func checkDecision(t *testing.T, c semanticCase, d *Decision) {
	t.Helper()
	if d.Allowed != c.Allow {
		t.Errorf("allowed = %v, want %v (%s); decision: %s", d.Allowed, c.Allow, c.Why, d.Explain())
	}
	if c.By != "" && d.Rule != c.By {
		t.Errorf("deciding rule = %q, want %q; decision: %s", d.Rule, c.By, d.Explain())
	}
	if c.Reason != "" && d.Reason != c.Reason {
		t.Errorf("reason = %q, want %q; decision: %s", d.Reason, c.Reason, d.Explain())
	}
	var audit []string
	for _, h := range d.Audit {
		audit = append(audit, h.Rule)
	}
	if strings.Join(audit, ",") != strings.Join(c.Audit, ",") {
		t.Errorf("audit = %v, want %v", audit, c.Audit)
	}
	if c.Shadow != nil {
		got := d.Allowed
		if d.Shadow != nil {
			got = d.Shadow.Allowed
		}
		if got != *c.Shadow {
			t.Errorf("dry-run verdict allowed = %v, want %v; decision: %s", got, *c.Shadow, d.Explain())
		}
	}
	if c.Explains != "" && !strings.Contains(d.Explain(), c.Explains) {
		t.Errorf("explanation %q does not contain %q", d.Explain(), c.Explains)
	}
}
