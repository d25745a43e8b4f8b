package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/authz/authztest"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// testTimeout replaces the 50ms production evaluation timeout in tests: on
// a loaded machine (or under -race) a fail-closed timeout is not what the
// tests look for.
const testTimeout = time.Minute

// The suite's data format and loader are shared (authztest).
type (
	semanticsFile = authztest.SemanticsFile
	semanticCase  = authztest.Case
	caseRequest   = authztest.Request
)

// requestOf is a case's request with the suite's defaults.
func requestOf(c caseRequest) *Request {
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

func loadSemantics(t *testing.T) map[string]semanticsFile { return authztest.LoadSemantics(t) }

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
				d, err := p.Decide(context.Background(), requestOf(c.Req))
				if err != nil && Reason(c.Reason) != ReasonInvalidPolicy && Reason(c.Reason) != ReasonBadRequest {
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
	if c.Reason != "" && d.Reason != Reason(c.Reason) {
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
