package redirect_test

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wardmesh/ward/redirect"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderGolden(t *testing.T) {
	annotated := redirect.DefaultConfig()
	annotated.IncludeInboundPorts = redirect.PortSet{Ports: []uint16{8080, 9000}}
	annotated.ExcludeInboundPorts = []uint16{9090}
	annotated.ExcludeOutboundPorts = []uint16{9443}
	annotated.IncludeOutboundRanges = redirect.RangeSet{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/108")}}
	annotated.ExcludeOutboundRanges = []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32")}
	for name, cfg := range map[string]redirect.Config{
		"default.nft":   redirect.DefaultConfig(),
		"annotated.nft": annotated,
		"nothing.nft":   {},
	} {
		t.Run(name, func(t *testing.T) {
			got := redirect.Render(cfg)
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Render differs from %s (-want +got; -update rewrites):\n%s", path, diff)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"*": "*", " * ": "*", "": "", "80, 443,": "80,443"} {
		got, err := redirect.ParsePortSet(in)
		if err != nil || got.String() != want {
			t.Errorf("ParsePortSet(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"*": "*", "": "", "10.0.0.1,10.1.2.3/8, fd00::1/64": "10.0.0.1/32,10.0.0.0/8,fd00::/64"} {
		got, err := redirect.ParseRangeSet(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseRangeSet(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "65536", "http", "80-90", "-1"} {
		if _, err := redirect.ParsePortSet(in); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("ParsePortSet(%q): error %v, want one naming it", in, err)
		}
	}
	for _, in := range []string{"10.0.0.0/33", "example.com", "10.0.0.0/8,nope"} {
		if _, err := redirect.ParseRangeSet(in); err == nil {
			t.Errorf("ParseRangeSet(%q) accepted", in)
		}
	}
}

// TestErrorNamesWhatFailed: a failure names the operation, the table and
// the namespace, and says what to check when nf_tables is missing.
func TestErrorNamesWhatFailed(t *testing.T) {
	cfg := redirect.DefaultConfig()
	cfg.NetNS = "/nonexistent/netns"
	err := redirect.Install(cfg)
	var re *redirect.Error
	if !errors.As(err, &re) || re.Op != "install" || !strings.Contains(err.Error(), "table inet ward in network namespace /nonexistent/netns") ||
		redirect.Unavailable(err) || strings.Contains(err.Error(), "is nf_tables") {
		t.Fatalf("Install in a missing namespace: %v", err)
	}
	for _, errno := range []error{unix.EPROTONOSUPPORT, unix.EOPNOTSUPP} {
		msg := (&redirect.Error{Op: "install", Table: "ward", Err: errno}).Error()
		if !redirect.Unavailable(errno) || !strings.Contains(msg, "is nf_tables") {
			t.Errorf("%v: %q does not say nf_tables is missing", errno, msg)
		}
	}
	if msg := (&redirect.Error{Op: "install", Table: "ward", Err: unix.EPERM}).Error(); !strings.Contains(msg, "CAP_NET_ADMIN") {
		t.Errorf("EPERM: %q does not name CAP_NET_ADMIN", msg)
	}
}
