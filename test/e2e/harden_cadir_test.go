package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	pb "istio.io/api/security/v1alpha1"
)

// startServe runs `ward serve` on a copy of the examples with extra flags
// and returns the process, its config dir, state dir and addresses.
func startServe(t *testing.T, extra ...string) (p *wardProc, cfg, state, debug, secure, xdsAddr string) {
	t.Helper()
	dir := t.TempDir()
	cfg, state = filepath.Join(dir, "config"), filepath.Join(dir, "state")
	if err := os.CopyFS(cfg, os.DirFS(examplesDir(t))); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--config", cfg, "--state", state, "--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0",
		"--secure-addr", "127.0.0.1:0", "--authz-addr", "", "--debounce", "20ms"}, extra...)
	p = startWard(t, args...)
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+) secure_addr=(\S+)`), time.Minute)
	return p, cfg, state, "http://" + m[1], m[3], m[2]
}

// TestServeCSRFlood performs the CSR flood against a real ward serve: an
// unauthenticated client sends CSRs as fast as it can; beyond the
// unauthenticated share of the rate they are answered RESOURCE_EXHAUSTED,
// the warnings are rate-limited, and a real agent still enrols.
func TestServeCSRFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	p, _, state, debug, secure, xdsAddr := startServe(t, "--ca-csr-max-per-second", "20")
	cc, err := grpc.NewClient(secure, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))) // the attacker does not care who serves
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	api := pb.NewIstioCertificateServiceClient(cc)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	got := map[codes.Code]int{}
	start := time.Now()
	const n = 300
	for range n {
		_, err := api.CreateCertificate(t.Context(), &pb.IstioCertificateRequest{Csr: csr})
		got[codeOf(err)]++
	}
	elapsed := time.Since(start)
	// At most the burst (10) plus 10/s of the unauthenticated share pass.
	maxPassed := 10 + int(10*elapsed.Seconds()) + 1
	if got[codes.Unauthenticated] > maxPassed || got[codes.Unauthenticated]+got[codes.ResourceExhausted] != n {
		t.Fatalf("flood of %d CSRs in %s: %v; want at most %d Unauthenticated, the rest ResourceExhausted", n, elapsed, got, maxPassed)
	}
	t.Logf("flood of %d CSRs in %s: %d processed (Unauthenticated), %d refused (ResourceExhausted)", n, elapsed, got[codes.Unauthenticated], got[codes.ResourceExhausted])
	warned := 0
	for drained := false; !drained; {
		select {
		case l := <-p.lines:
			if strings.Contains(l, "csr caller not authenticated") || strings.Contains(l, "csr refused") {
				warned++
			}
		default:
			drained = true
		}
	}
	if warned > 4 {
		t.Errorf("%d warning lines for the flood; want them rate-limited", warned)
	}
	// Every refusal is counted under the limit that made it: mostly the
	// unauthenticated share, but a CSR can meet the global bucket or the
	// source's failure budget first, depending on timing.
	var counted float64
	byLimit := map[string]float64{}
	for _, limit := range []string{"global", "unauthenticated", "concurrency", "identity", "source", "node"} {
		if v := metricValue(t, debug, `ward_ca_rate_limited_total{limit="`+limit+`"}`); v > 0 {
			counted += v
			byLimit[limit] = v
		}
	}
	if counted != float64(got[codes.ResourceExhausted]) || byLimit["unauthenticated"] < float64(got[codes.ResourceExhausted])/2 {
		t.Errorf("ward_ca_rate_limited_total by limit = %v (sum %v); want the %d refusals, most of them unauthenticated", byLimit, counted, got[codes.ResourceExhausted])
	}
	// A legitimate agent enrols (it retries with backoff if it meets the
	// tail of the flood).
	enrolAgent(t, t.TempDir(), state, secure, xdsAddr)
}

// TestReservedIdentityCLI: minting a token for the control plane's own
// identity is refused with a clear message.
func TestReservedIdentityCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	state := t.TempDir()
	for sa, want := range map[string]string{"ward": "is the control plane's own", "debug": "--ca-allow-reserved ward-system/debug"} {
		out, err := exec.Command(buildWard(t), "ca", "token", "create", "--state", state, "--ns", "ward-system", "--sa", sa).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("token create --ns ward-system --sa %s: %v %q, want refused with %q", sa, err, out, want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "tokens")); len(ents) != 0 {
		t.Errorf("%d token records written", len(ents))
	}
}

// TestServeConfigDirAttacks performs the non-regular-file and size
// attacks on a real ward serve: a *.yaml link to /dev/zero and a FIFO are
// rejected without reading, later changes still apply, /readyz stays
// ready, memory stays small; a tree over --config-max-bytes is refused
// and the last good config keeps serving.
func TestServeConfigDirAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	p, cfg, _, debug, _, _ := startServe(t, "--config-max-bytes", strconv.Itoa(1<<20))
	if err := os.Symlink("/dev/zero", filepath.Join(cfg, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(cfg, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both files rejected", func() error {
		var z configz
		getJSON(t, debug+"/debug/configz", &z)
		var n int
		for _, r := range z.Rejected {
			if strings.Contains(r.Error, "outside the config tree") || strings.Contains(r.Error, "not a regular file (named pipe)") {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("rejections %v", z.Rejected)
		}
		return nil
	})
	// A later change still applies: the FIFO blocks nothing.
	policy := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all, namespace: attack}\nspec: {}\n"
	renameInto(t, filepath.Join(cfg, "attack.yaml"), policy)
	eventually(t, "a later change applied", func() error { return hasObject(t, debug, "deny-all") })
	if code := httpStatus(t, debug+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d", code)
	}
	if rss := vmRSS(t, p.cmd.Process.Pid); rss > 300<<20 {
		t.Errorf("RSS %d MiB after the attack", rss>>20)
	}
	var before configz
	getJSON(t, debug+"/debug/configz", &before)
	renameInto(t, filepath.Join(cfg, "zz-big.yaml"), "# "+strings.Repeat("x", 2<<20)+"\n")
	p.waitLine(t, regexp.MustCompile(`config reload failed.*larger than 1048576 bytes.*zz-big.yaml`), 30*time.Second)
	var after configz
	getJSON(t, debug+"/debug/configz", &after)
	if after.Version != before.Version || hasObject(t, debug, "deny-all") != nil {
		t.Error("a refused tree displaced the last good config")
	}
}

func renameInto(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func hasObject(t *testing.T, debug, name string) error {
	var z configz
	getJSON(t, debug+"/debug/configz", &z)
	for _, o := range z.Objects {
		if o.Name == name {
			return nil
		}
	}
	return fmt.Errorf("%s not served", name)
}

// vmRSS is the resident set size of pid in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// metricValue reads one sample from /metrics; -1 when absent.
func metricValue(t *testing.T, debug, sample string) float64 {
	t.Helper()
	resp, err := http.Get(debug + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
