package e2e

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditTrafficGraphInChromium renders the observed-traffic report of
// audit/testdata/traffic in headless Chromium: the DOM holds the graph's
// lines by verdict and security, and the screenshot shows the graph's
// own green (mTLS), orange (plaintext) and red (denied) strokes.
func TestAuditTrafficGraphInChromium(t *testing.T) {
	bin := chromium(t)
	art := artifactDir(t)
	report := filepath.Join(art, "audit-traffic.html")
	data := filepath.Join("..", "..", "audit", "testdata", "traffic")
	if _, stderr, code := runWard(t, "audit", "--config", data, "--calls", filepath.Join(data, "calls.jsonl"), "-o", "html", "--out", report); code != 0 {
		t.Fatalf("ward audit -o html --calls: exit %d: %s", code, stderr)
	}
	url := "file://" + report
	dom := string(runChromium(t, bin, "--dump-dom", url))
	if err := os.WriteFile(filepath.Join(art, "dom.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	for want, n := range map[string]int{`<svg id="traffic-graph"`: 1, `class="edge allowed mtls"`: 3, `class="edge allowed plaintext"`: 2,
		`class="edge denied mtls"`: 1, ">shop/cart</text>": 1, "TRAFFIC-PLAINTEXT": 1} {
		if got := strings.Count(dom, want); got < n {
			t.Errorf("rendered DOM has %d of %q, want ≥ %d (see %s)", got, want, n, filepath.Join(art, "dom.html"))
		}
	}
	shot := filepath.Join(art, "audit-traffic.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1400", "--hide-scrollbars", url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	for _, c := range []struct {
		name    string
		r, g, b uint8
	}{{"mTLS green", 0x43, 0xa0, 0x47}, {"plaintext orange", 0xfb, 0x8c, 0x00}, {"denied red", 0xe5, 0x39, 0x35}} {
		if n := countNear(img, c.r, c.g, c.b); n < 50 {
			t.Errorf("screenshot has %d pixels of the graph's %s; the graph did not render (see %s)", n, c.name, shot)
		}
	}
	t.Logf("artefacts in %s", art)
}
