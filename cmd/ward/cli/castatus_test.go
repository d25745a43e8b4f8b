package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardmesh/ward/ca"
)

// TestCAStatus reads a CA state made by `ward ca init` in every format.
func TestCAStatus(t *testing.T) {
	state := t.TempDir()
	if _, err := execRoot(t, "ca", "init", "--state", state, "--trust-domain", "example.org"); err != nil {
		t.Fatal(err)
	}
	out, err := execRoot(t, "ca", "status", "--state", state, "--trust-domain", "example.org", "-o", "json")
	if err != nil {
		t.Fatalf("ca status -o json: %v %s", err, out)
	}
	var st ca.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.TrustDomain != "example.org" || len(st.Roots) != 1 || !st.Roots[0].Signing || st.Signer.Serial == "" {
		t.Errorf("status = %+v", st)
	}
	out, err = execRoot(t, "ca", "status", "--state", state, "--trust-domain", "example.org")
	if err != nil || !strings.Contains(out, "Trust domain:  example.org") || !strings.Contains(out, st.Roots[0].Serial) {
		t.Errorf("ca status table: %v\n%s", err, out)
	}
	if out, err := execRoot(t, "ca", "status", "--state", state, "-o", "yaml"); err != nil || !strings.Contains(out, "signing: true") {
		t.Errorf("ca status yaml: %v\n%s", err, out)
	}
	if _, err := execRoot(t, "ca", "status", "--state", t.TempDir()+"/none"); err == nil {
		t.Error("missing state accepted")
	}
}
