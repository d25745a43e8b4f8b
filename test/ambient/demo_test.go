package ambient

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoScript runs `make demo-ambient` (hack/demo-ambient.sh) as a
// user would, on free loopback ports, so the documented way to try
// ambient mode keeps working: web → db over HBONE with web's identity,
// the app in db seeing web's address,
// a plaintext caller refused by STRICT, a DENY written into ward serve's
// config enforced. The script removes what it creates; so does its trap
// when the test's timeout kills it.
func TestDemoScript(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("builds ward and runs the demo")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "hack", "demo-ambient.sh"))
	cmd.Env = append(os.Environ(), "WARD_DEMO_ADDR="+freeAddr(t), "WARD_DEMO_DEBUG_ADDR="+freeAddr(t))
	cmd.WaitDelay = 10 * time.Second
	timer := time.AfterFunc(4*time.Minute, func() { cmd.Process.Signal(os.Interrupt) })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo-ambient: %v\n%s", err, out)
	}
	for _, want := range []string{
		"db: hello 10.254.77.1:", // the app sees web's address, not its own (IP_TRANSPARENT)
		"db's node proxy saw: spiffe://cluster.local/ns/frontend/sa/web",
		"refused by STRICT mTLS\n   refused\n",
		`"policy":"ns[shop]-policy[deny-web]"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
