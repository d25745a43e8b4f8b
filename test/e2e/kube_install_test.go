package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/kube/kubetest"
)

// The ward binary's install verbs against the real API server: install
// with pinned images creates everything, a second run changes nothing,
// the readiness wait fails with its reason (this harness runs no
// controllers), a dry run shows a plan with a prune and changes nothing,
// and uninstall removes Ward but the CRDs and the namespace.
func TestKubeInstallCLI(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	ns := fmt.Sprintf("ward-cli-%d", time.Now().UnixNano()%1e6)
	images := filepath.Join(env.Root, "deploy", "testdata", "images.json")
	const pinned = "ghcr.io/wardmesh/ward@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	base := []string{"--kubeconfig", env.Kubeconfig, "-n", ns}
	t.Cleanup(func() { runWard(t, append([]string{"uninstall", "--wait", "0"}, base...)...) })

	buildWard(t) // not in the timing
	start := time.Now()
	out, stderr, code := runWard(t, append([]string{"install", "--images", images, "--wait", "0"}, base...)...)
	// 23 objects, all new but the CRDs, which other tests of this package
	// may have applied already.
	if code != 0 || !regexp.MustCompile(`23 objects: (12 created, 11 configured|23 created) in`).MatchString(out) {
		t.Fatalf("first install: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("ward install: %v (process included)", time.Since(start))
	d, err := env.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, "ward", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != pinned || !strings.Contains(strings.Join(c.Args, " "), "--ward-image="+pinned) {
		t.Errorf("deployment image %s, args %v; want both pinned to %s", c.Image, c.Args, pinned)
	}

	out, stderr, code = runWard(t, append([]string{"install", "--images", images, "--wait", "0"}, base...)...)
	if code != 0 || !strings.Contains(out, "23 objects: 23 unchanged") {
		t.Fatalf("second install: exit %d\n%s%s", code, out, stderr)
	}

	out, stderr, code = runWard(t, append([]string{"install", "--images", images, "--wait", "2s"}, base...)...)
	if code == 0 || !strings.Contains(stderr, "control plane ready not reached after 2s") || !strings.Contains(stderr, "has not observed generation") {
		t.Fatalf("install with a readiness wait: exit %d, want an error naming the reason\n%s%s", code, out, stderr)
	}

	values := filepath.Join(t.TempDir(), "one.yaml")
	if err := os.WriteFile(values, []byte("replicas: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runWard(t, append([]string{"install", "--images", images, "-f", values, "--dry-run", "-o", "table"}, base...)...)
	if code != 0 || !regexp.MustCompile(`pruned\s+PodDisruptionBudget\s+`+ns+`/ward`).MatchString(out) || !strings.Contains(out, "1 configured, 21 unchanged, 1 pruned") || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run with one replica: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := env.Clients.Kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "ward", metav1.GetOptions{}); err != nil {
		t.Errorf("the dry run deleted the PodDisruptionBudget: %v", err)
	}

	out, stderr, code = runWard(t, append([]string{"uninstall", "--dry-run"}, base...)...)
	if code != 0 || !strings.Contains(out, "11 deleted, 12 kept") || !strings.Contains(out, "dry run") {
		t.Fatalf("uninstall --dry-run: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := env.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, "ward", metav1.GetOptions{}); err != nil {
		t.Fatalf("the dry run deleted the Deployment: %v", err)
	}
	out, stderr, code = runWard(t, append([]string{"uninstall", "--wait", "30s"}, base...)...)
	if code != 0 || !strings.Contains(out, "11 deleted, 12 kept") {
		t.Fatalf("uninstall: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := env.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, "ward", metav1.GetOptions{}); err == nil {
		t.Error("deployment still there after uninstall")
	}
}

// `ward manifest generate` prints what install applies, pinned with
// --images.
func TestManifestGenerateCLI(t *testing.T) {
	root, _ := filepath.Abs("../..")
	out, stderr, code := runWard(t, "manifest", "generate", "--images", filepath.Join(root, "deploy", "testdata", "images.json"))
	if code != 0 || strings.Count(out, "ghcr.io/wardmesh/ward@sha256:1111") != 2 || strings.Contains(out, "ghcr.io/wardmesh/ward:") {
		t.Fatalf("manifest generate --images: exit %d, want the image pinned twice and no tag\n%s", code, stderr)
	}
	out, _, code = runWard(t, "manifest", "generate")
	if code != 0 || !strings.Contains(out, "# Source: ward/templates/deployment.yaml") {
		t.Fatalf("manifest generate: exit %d", code)
	}
}
