package node

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestCaptureWithoutBinaries installs, re-installs and removes the capture
// in a fresh network namespace with PATH emptied: no iptables, ip or
// nsenter is reachable, so everything goes over netlink sockets bound to
// the namespace.
func TestCaptureWithoutBinaries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace")
	}
	path := newNetNS(t)
	t.Setenv("PATH", "")
	var warnings []string
	warn := func(msg string, _ ...any) { warnings = append(warnings, msg) }

	for range 2 { // the second install replaces the first
		if err := installCapture(path, warn); err != nil {
			t.Fatal(err)
		}
	}
	if len(warnings) != 0 {
		t.Errorf("warnings in a fresh namespace: %v", warnings)
	}
	chains, rules, routes := captureState(t, path)
	want := []string{"filter_input", "filter_output", "mangle_output", "mangle_prerouting", "nat_output", "nat_prerouting"}
	if !slices.Equal(chains, want) {
		t.Errorf("chains of inet %s = %v, want %v", CaptureTable, chains, want)
	}
	if rules != 1 || routes != 1 {
		t.Errorf("after two installs: %d policy rules, %d table-%d routes; want 1, 1", rules, routes, tproxyTable)
	}

	for range 2 { // removing twice is fine
		if err := removeCapture(path); err != nil {
			t.Fatal(err)
		}
	}
	if chains, rules, routes := captureState(t, path); len(chains) != 0 || rules != 0 || routes != 0 {
		t.Errorf("after removal: chains %v, %d policy rules, %d routes", chains, rules, routes)
	}
}

// TestCapturePlanMatchesIptablesSemantics pins the plan's shape: which
// chains hook where and how many rules each has, as the iptables rules
// of earlier versions had.
func TestCapturePlanMatchesIptablesSemantics(t *testing.T) {
	var got []string
	for _, ch := range capturePlan() {
		got = append(got, fmt.Sprintf("%s:%s:%d:%d:%d", ch.name, ch.typ, *ch.hook, *ch.priority, len(ch.rules)))
	}
	want := []string{
		"nat_prerouting:nat:0:-100:2",
		"nat_output:nat:3:-100:4",
		"filter_input:filter:1:0:2",
		"filter_output:filter:3:0:3",
		"mangle_prerouting:filter:0:-150:1",
		"mangle_output:route:3:-150:1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// captureState reads, over netlink, the capture table's chain names
// (sorted), the number of tproxy policy rules and of routes in table 100.
func captureState(t *testing.T, path string) (chains []string, rules, routes int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range all {
		if ch.Table.Name == CaptureTable {
			chains = append(chains, ch.Name)
		}
	}
	slices.Sort(chains)
	err = withRoutes(path, func(h *netlink.Handle) error {
		rs, err := h.RuleList(unix.AF_INET)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Priority == tproxyPref && r.Mark == tproxyMark && r.Table == tproxyTable {
				rules++
			}
		}
		rts, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: tproxyTable}, netlink.RT_FILTER_TABLE)
		routes = len(rts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return chains, rules, routes
}

// newNetNS makes a network namespace with lo up, held by a thread that
// lives until the test ends, and returns its path.
func newNetNS(t *testing.T) string {
	t.Helper()
	paths := make(chan string, 1)
	errs := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: Go retires the thread
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errs <- err
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			errs <- err
			return
		}
		paths <- fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		<-done
	}()
	t.Cleanup(func() { close(done) })
	select {
	case p := <-paths:
		return p
	case err := <-errs:
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	return ""
}

// TestCaptureRemovesLegacyChains: a namespace still holding the iptables
// chains of an earlier ward node loses them on install where the iptables
// binary exists; without it they are reported, and the install succeeds.
func TestCaptureRemovesLegacyChains(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables to create the old chains")
	}
	path := newNetNS(t)
	ns := netns{path}
	legacy := func() string {
		var out []byte
		err := ns.do(func() error {
			var err error
			out, err = exec.Command("iptables", "-w", "-t", "nat", "-S").CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("iptables -S: %v: %s", err, out)
		}
		return string(out)
	}
	addLegacy := func() {
		t.Helper()
		err := ns.do(func() error {
			for _, args := range [][]string{{"-N", "WARD_INBOUND"}, {"-A", "PREROUTING", "-j", "WARD_INBOUND"}, {"-A", "WARD_INBOUND", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"}} {
				if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput(); err != nil {
					return fmt.Errorf("iptables %v: %v: %s", args, err, out)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var warnings []string
	warn := func(msg string, _ ...any) { warnings = append(warnings, msg) }

	addLegacy()
	if err := installCapture(path, warn); err != nil {
		t.Fatal(err)
	}
	if s := legacy(); strings.Contains(s, "WARD_") || len(warnings) != 0 {
		t.Fatalf("with iptables: old chains left (%v):\n%s", warnings, s)
	}

	addLegacy()
	nft, _ := iptablesBackendNFT()
	t.Setenv("PATH", "")
	if err := installCapture(path, warn); err != nil {
		t.Fatal(err)
	}
	if !nft {
		t.Log("iptables-legacy: its chains are invisible to nf_tables, so nothing can be reported")
	} else if len(warnings) != 1 || !strings.Contains(warnings[0], "remains") {
		t.Errorf("without iptables, warnings = %v, want one saying the old chains remain", warnings)
	}
}

// iptablesBackendNFT reports whether iptables here is iptables-nft, whose
// chains nf_tables lists.
func iptablesBackendNFT() (bool, error) {
	out, err := exec.Command("iptables", "-V").CombinedOutput()
	return strings.Contains(string(out), "nf_tables"), err
}
