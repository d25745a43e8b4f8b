package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/telemetry/als"
)

func trafficReport(t *testing.T) *Report {
	t.Helper()
	res, err := file.Load("testdata/traffic")
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Errs())
	}
	f, err := os.Open("testdata/traffic/calls.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	calls, err := als.ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	return Build(Input{Snapshot: res.Snapshot, Source: "traffic", Calls: calls, Now: auditNow})
}

// TestTrafficGolden pins the observed-traffic model, the readiness it
// feeds and its findings.
func TestTrafficGolden(t *testing.T) {
	r := trafficReport(t)
	var findings []Finding
	for _, f := range r.Findings {
		if f.Category == "observed traffic" {
			findings = append(findings, f)
		}
	}
	got, err := json.MarshalIndent(struct {
		Traffic   *Traffic         `json:"observedTraffic"`
		Readiness []NamespaceReady `json:"strictReadiness"`
		Findings  []Finding        `json:"findings"`
	}{r.Traffic, r.StrictReadiness, findings}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "traffic.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if d := cmp.Diff(strings.TrimSpace(string(want)), string(got)); d != "" {
		t.Errorf("traffic model differs from %s (-want +got):\n%s", golden, d)
	}
}

// TestTrafficBehaviour pins what the golden encodes.
func TestTrafficBehaviour(t *testing.T) {
	tr := trafficReport(t).Traffic
	if tr.Calls != 7 || tr.Denied != 1 || tr.Plaintext != 2 || tr.Unattributed != 1 {
		t.Errorf("counts = %d calls, %d denied, %d plaintext, %d unattributed", tr.Calls, tr.Denied, tr.Plaintext, tr.Unattributed)
	}
	if len(tr.PlaintextByNamespace) != 1 || tr.PlaintextByNamespace[0].Namespace != "legacy" || tr.PlaintextByNamespace[0].Calls != 2 {
		t.Errorf("plaintext by namespace = %+v", tr.PlaintextByNamespace)
	}
	if len(tr.DeniedCalls) != 1 || tr.DeniedCalls[0].Source != "spiffe://cluster.local/ns/legacy/sa/legacy" {
		t.Errorf("denied = %+v", tr.DeniedCalls)
	}
	// frontend and legacy have no ALLOW policy; cart has one.
	for _, e := range tr.OpenAllowed {
		if strings.HasSuffix(e.Destination, "/sa/cart") {
			t.Errorf("cart has an ALLOW policy, listed as open: %+v", e)
		}
	}
	if len(tr.OpenAllowed) != 3 {
		t.Errorf("open allowed = %+v", tr.OpenAllowed)
	}
	if tr.From.Format("15:04") != "10:00" || tr.To.Format("15:04") != "10:06" {
		t.Errorf("window %v … %v", tr.From, tr.To)
	}
}

// TestTrafficRender: every format carries the section; the HTML draws
// the graph inline with one line per edge and verdict.
func TestTrafficRender(t *testing.T) {
	r := trafficReport(t)
	for _, f := range []string{"table", "markdown", "html", "json"} {
		var buf bytes.Buffer
		if err := Render(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"TRAFFIC-PLAINTEXT", "plaintext 10.9.9.9", "spiffe://cluster.local/ns/istio-system/sa/ingress"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("%s lacks %q", f, want)
			}
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, r, "html"); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for class, n := range map[string]int{`class="edge allowed mtls"`: 3, `class="edge allowed plaintext"`: 2, `class="edge denied mtls"`: 1} {
		if got := strings.Count(html, class); got != n {
			t.Errorf("%s: %d lines, want %d", class, got, n)
		}
	}
	if !strings.Contains(html, `<svg id="traffic-graph"`) || strings.Contains(html, "<script") {
		t.Error("no inline traffic graph, or a script")
	}
}

// TestNoTrafficNoSection: without records the section says so and the
// HTML has no graph.
func TestNoTrafficNoSection(t *testing.T) {
	r := examplesReport(t)
	if r.Traffic != nil {
		t.Fatal("traffic without records")
	}
	var buf bytes.Buffer
	if err := Render(&buf, r, "html"); err != nil || strings.Contains(buf.String(), "traffic-graph") {
		t.Errorf("graph without records: %v", err)
	}
}
