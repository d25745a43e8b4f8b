package node

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"os"

	"github.com/google/nftables"
)

// Chains the iptables-based capture of earlier `ward node` versions
// created in a workload's nat and mangle tables (and ip6tables filter
// table).
var legacyChains = []string{"WARD_INBOUND", "WARD_OUTPUT"}

// legacyTables are those tables with the built-in chains that jumped to
// the proxy's: {command, table, built-in chain for WARD_INBOUND, for
// WARD_OUTPUT}.
var legacyTables = [][4]string{
	{"iptables", "nat", "PREROUTING", "OUTPUT"},
	{"iptables", "mangle", "PREROUTING", "OUTPUT"},
	{"ip6tables", "filter", "INPUT", "OUTPUT"},
}

// removeLegacy migrates a namespace from an iptables-based `ward node`:
// both captures together would redirect twice and the old jumps would
// outlive the workload's removal. Where the iptables binary exists (a
// node image that still ships it) the old jumps and chains are deleted,
// run inside the namespace from a thread switched into it (no nsenter).
// Without it (the distroless image) they cannot be deleted safely from
// here; when the iptables-nft backend made them visible to nf_tables they
// are reported through warn, and stay until the pod restarts or an
// operator removes them. Neither case fails enrolment: the new table is
// complete on its own.
func removeLegacy(path string, warn func(msg string, args ...any)) {
	if _, err := exec.LookPath("iptables"); err == nil {
		if err := (netns{path}).do(func() error { return deleteLegacyChains(warn) }); err != nil {
			warn("removing iptables capture of an earlier ward node failed", "error", err)
		}
		return
	}
	if found := legacyChainsIn(path); len(found) > 0 {
		warn("iptables capture of an earlier ward node remains (no iptables binary to remove it)", "chains", strings.Join(found, ","))
	}
}

// deleteLegacyChains runs on a thread in the pod's namespace; the
// commands it starts inherit that namespace.
func deleteLegacyChains(warn func(msg string, args ...any)) error {
	var errs []string
	for _, lt := range legacyTables {
		if _, err := exec.LookPath(lt[0]); err != nil {
			continue
		}
		cmds := [][]string{{"-D", lt[2], "-j", legacyChains[0]}, {"-D", lt[3], "-j", legacyChains[1]}}
		for _, ch := range legacyChains {
			cmds = append(cmds, []string{"-F", ch}, []string{"-X", ch})
		}
		for _, args := range cmds {
			out, err := exec.Command(lt[0], append([]string{"-w", "-t", lt[1]}, args...)...).CombinedOutput()
			if err != nil && !legacyMissing(out) {
				errs = append(errs, fmt.Sprintf("%s -t %s %s: %s", lt[0], lt[1], strings.Join(args, " "), bytes.TrimSpace(out)))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func legacyMissing(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "No chain/target/match") || strings.Contains(s, "does not exist") ||
		strings.Contains(s, "Bad rule") || strings.Contains(s, "Table does not exist")
}

// legacyChainsIn lists the old chains nf_tables shows in the namespace
// (iptables-nft keeps them in tables of family ip and ip6); with the
// legacy x_tables backend they are invisible here.
func legacyChainsIn(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return nil
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil
	}
	var found []string
	for _, ch := range chains {
		if ch.Table.Family == nftables.TableFamilyINet {
			continue
		}
		for _, name := range legacyChains {
			if ch.Name == name {
				found = append(found, ch.Table.Name+"/"+ch.Name)
			}
		}
	}
	return found
}
