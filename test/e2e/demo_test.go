package e2e

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `ward demo` as a user would, bounded in time: the control
// plane, six agents and six proxyless workloads on loopback. It must
// exit 0 (every expected outcome seen), print allowed and denied calls
// with their deciding rules, both canary phases, and the audit report.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const bound = 4 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildWard(t), "demo", "--duration", "4s", "--dir", t.TempDir())
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("ward demo did not finish within %s; output so far:\n%s\nstderr:\n%s", bound, out, stderr.String())
	}
	if err != nil {
		t.Fatalf("ward demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	for _, want := range []*regexp.Regexp{
		// An allowed call with the rule that allowed it, and denied ones
		// with theirs (the DENY policy; no ALLOW rule for a token-less call).
		regexp.MustCompile(`frontend\s+reviews \(v[123]\)\s+Reviews/List\s+mTLS as frontend\s+ALLOW\s+allowed by ns\[bookinfo\]-policy\[reviews-viewer\]-rule\[0\]`),
		regexp.MustCompile(`frontend\s+ratings\s+Ratings/Get\s+mTLS as frontend\s+DENY\s+denied by ns\[bookinfo\]-policy\[ratings-deny-frontend\]-rule\[0\]`),
		regexp.MustCompile(`frontend\s+ratings\s+Ratings/Admin\s+mTLS as frontend, no token\s+DENY\s+denied: no ALLOW policy matched`),
		regexp.MustCompile(`frontend\s+ratings\s+Ratings/Admin\s+mTLS as frontend \+ ops JWT\s+ALLOW\s+allowed by ns\[bookinfo\]-policy\[ratings-viewer\]-rule\[1\]`),
		regexp.MustCompile(`outsider\s+reviews-v1\s+Reviews/List\s+plaintext, no identity\s+REFUSED`),
		regexp.MustCompile(`(?m)^  -- canary 50% v1 / 50% v3`),
		regexp.MustCompile(`reviews \(v3\)`),
		regexp.MustCompile(`(?m)^Totals: [1-9]\d* allowed, [1-9]\d* denied, 1 refused, 0 failed`),
		regexp.MustCompile(`(?m)^Audit of the running mesh`),
		// Real records from the proxyless interceptors, through Ward's
		// access-log service: allowed and denied calls between identities.
		regexp.MustCompile(`== Observed traffic \([1-9]\d* calls .*: [1-9]\d* allowed, [1-9]\d* denied`),
		regexp.MustCompile(`spiffe://cluster.local/ns/bookinfo/sa/frontend\s+spiffe://cluster.local/ns/bookinfo/sa/reviews\s+grpc\s+yes\s+[1-9]`),
		regexp.MustCompile(`(?m)^Policies recommended from the observed calls`),
		// details has no ALLOW policy: its calls are allowed, flagged by
		// the audit, and the recommendation proposes a least-privilege
		// dry-run policy for exactly what was seen; reviews and ratings
		// already have ALLOW policies and get none.
		regexp.MustCompile(`frontend\s+details\s+Details/Get\s+mTLS as frontend\s+ALLOW\s+allowed: no ALLOW policy applies`),
		regexp.MustCompile(`(?m)^  ok   details, with no ALLOW policy yet, is open to mesh identities$`),
		regexp.MustCompile(`TRAFFIC-ALLOWED-WITHOUT-POLICY\s+spiffe://cluster.local/ns/bookinfo/sa/details\s+[1-9]\d* calls allowed only because no ALLOW policy applies`),
		regexp.MustCompile(`(?m)^    istio.io/dry-run: "true"\n    recommend.wardmesh.io/evidence: [1-9]\d* calls, .*\n    recommend.wardmesh.io/workloads: spiffe://cluster.local/ns/bookinfo/sa/details\n  name: ward-recommended-details\n  namespace: bookinfo\nspec:\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals:\n        - cluster.local/ns/bookinfo/sa/frontend\n    to:\n    - operation:\n        methods:\n        - POST\n        paths:\n        - /bookinfo.Details/Get\n        ports:\n        - "\d+"\n  selector:\n    matchLabels:\n      app: details\n`),
		regexp.MustCompile(`(?m)^note: [1-9]\d* calls to bookinfo/ratings not used: it already has an enforced ALLOW policy`),
		regexp.MustCompile(`(?m)^note: [1-9]\d* calls to bookinfo/reviews not used: it already has an enforced ALLOW policy`),
		regexp.MustCompile(`(?m)^verified with Ward's engine: [1-9]\d* recorded allowed calls allowed by --config plus the enforced recommendation; 0 not verifiable`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if n := strings.Count(out, "name: ward-recommended-"); n != 1 {
		t.Errorf("%d recommended policies, want 1 (details)", n)
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a check failed")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
