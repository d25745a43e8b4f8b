package e2e

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const chromiumPath = "/usr/bin/chromium"

// chromium returns the browser, installing it with the project's script
// when it is missing; it skips only when that install cannot succeed.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	out, err := exec.Command("bash", "../../hack/install-chromium.sh").CombinedOutput()
	if _, serr := os.Stat(chromiumPath); serr != nil {
		t.Skipf("chromium cannot be installed on this machine (hack/install-chromium.sh: %v):\n%s", err, out)
	}
	return chromiumPath
}

// runChromium runs headless Chromium with the flags the issue prescribes
// plus args, bounded so a wedged browser fails the test instead of hanging.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// artifactDir is test/artifacts/<test> (git-ignored), kept after the run.
func artifactDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "artifacts", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAuditHTMLInChromium renders the HTML report in a real headless
// Chromium: the DOM must hold the report's key content and the screenshot
// must show the charts' bars.
func TestAuditHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	art := artifactDir(t)
	report := filepath.Join(art, "audit.html")
	if _, stderr, code := runWard(t, "audit", "--config", examplesDir(t), "-o", "html", "--out", report); code != 0 {
		t.Fatalf("ward audit -o html: exit %d: %s", code, stderr)
	}
	url := "file://" + report

	dom := string(runChromium(t, bin, "--dump-dom", url))
	if err := os.WriteFile(filepath.Join(art, "dom.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<h1>Ward audit report</h1>", `id="chart-findings"`, `id="chart-mtls"`,
		"MTLS-NO-IDENTITY", "payments/payments-legacy", "STRICT readiness", "port-level payments/cards-strict", "</svg>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q (see %s)", want, filepath.Join(art, "dom.html"))
		}
	}

	shot := filepath.Join(art, "audit.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars", url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The high-severity bar is #c62828 and the STRICT bar #2e7d32: both
	// must be painted, which proves the inline SVG rendered.
	if n := countNear(img, 0xc6, 0x28, 0x28); n < 50 {
		t.Errorf("screenshot has %d pixels of the high-severity red; the charts did not render (see %s)", n, shot)
	}
	if n := countNear(img, 0x2e, 0x7d, 0x32); n < 50 {
		t.Errorf("screenshot has %d pixels of the STRICT green; the charts did not render (see %s)", n, shot)
	}
	t.Logf("artefacts in %s", art)
}

// countNear counts pixels within a small distance of an RGB colour.
func countNear(img image.Image, r, g, b uint8) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr>>8, r) && near(pg>>8, g) && near(pb>>8, b) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, want uint8) bool {
	d := int(v) - int(want)
	return d > -12 && d < 12
}
