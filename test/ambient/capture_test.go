package ambient

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/wardmesh/ward/node"
)

// captureRules describes the node proxy's nf_tables table in p, read over
// netlink: one line per chain, "<chain>: <verdict kinds of its rules>"
// (redirect, reject, ct, return), or "" when there is no table.
func captureRules(t testing.TB, p pod) string {
	t.Helper()
	f, err := os.Open(p.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatalf("nftables in %s: %v", p.name, err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list chains in %s: %v", p.name, err)
	}
	var lines []string
	for _, ch := range chains {
		if ch.Table.Name != node.CaptureTable {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatalf("rules of %s in %s: %v", ch.Name, p.name, err)
		}
		var kinds []string
		for _, r := range rules {
			kinds = append(kinds, ruleKind(r))
		}
		lines = append(lines, ch.Name+": "+strings.Join(kinds, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func ruleKind(r *nftables.Rule) string {
	kind := "?"
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Redir:
			return "redirect"
		case *expr.Reject:
			return "reject"
		case *expr.Ct:
			if e.SourceRegister {
				return "ct"
			}
			kind = "ct" // restore-mark: ct mark loaded, meta mark set
		case *expr.Verdict:
			if e.Kind == expr.VerdictReturn && kind == "?" {
				kind = "return"
			}
		}
	}
	return kind
}

// policyRouting describes p's IPv4 policy rules and the routes of table
// 100 (the proxy's transparent sockets), read over netlink, in `ip`'s
// words: "fwmark 0x111/0xfff pref 32764 lookup 100", "local 0.0.0.0/0 dev
// lo table 100".
func policyRouting(t testing.TB, p pod) string {
	t.Helper()
	ns, err := netns.GetFromPath(p.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rules, err := h.RuleList(unix.AF_INET)
	if err != nil {
		t.Fatalf("rules in %s: %v", p.name, err)
	}
	var lines []string
	for _, r := range rules {
		if r.Mark == 0 {
			continue
		}
		mask := uint32(0xffffffff)
		if r.Mask != nil {
			mask = *r.Mask
		}
		lines = append(lines, fmt.Sprintf("fwmark %#x/%#x pref %d lookup %d", r.Mark, mask, r.Priority, r.Table))
	}
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("routes in %s: %v", p.name, err)
	}
	for _, r := range routes {
		typ := "unicast"
		if r.Type == unix.RTN_LOCAL {
			typ = "local"
		}
		dst := "0.0.0.0/0"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		dev := fmt.Sprint(r.LinkIndex)
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		lines = append(lines, fmt.Sprintf("%s %s dev %s table %d", typ, dst, dev, r.Table))
	}
	return strings.Join(lines, "\n")
}

// TestCaptureNeedsNoBinaries: with PATH emptied before the node proxies
// start — no iptables, ip or nsenter reachable, as in Ward's distroless
// image — capture, source-IP preservation, STRICT refusal and rule
// removal all work: everything goes over netlink sockets bound to each
// pod's namespace.
func TestCaptureNeedsNoBinaries(t *testing.T) {
	w := newWorld(t, func() { t.Setenv("PATH", "") })
	for _, tool := range []string{"iptables", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err == nil {
			t.Fatalf("test bug: %s is reachable", tool)
		}
	}
	got, err := exchange(t, w.a, w.b.addr+":9200", "")
	if host, _, _ := net.SplitHostPort(got); err != nil || host != w.a.addr {
		t.Fatalf("db's app saw its caller as %q (%v), want pod a %s", got, err, w.a.addr)
	}
	if d := w.lastFor(t, w.b.name); d.Transport != "hbone" || d.Conn.Principal != "spiffe://cluster.local/ns/frontend/sa/web" {
		t.Fatalf("decision = %+v", d)
	}
	if got, _ := exchange(t, w.plain, w.b.addr+":9000", "plain"); got != "" {
		t.Fatalf("plaintext caller reached the STRICT workload: %q", got)
	}
	if rules, routing := captureRules(t, w.b), policyRouting(t, w.b); !strings.Contains(rules, "nat_output: return return return redirect") || !strings.Contains(routing, "local 0.0.0.0/0 dev lo table 100") {
		t.Fatalf("capture in b:\n%s\n%s", rules, routing)
	}
	w.nodes[1].Stop() // RemoveRulesOnStop
	if rules, routing := captureRules(t, w.b), policyRouting(t, w.b); rules != "" || routing != "" {
		t.Fatalf("capture left in b after stop:\n%s\n%s", rules, routing)
	}
	if got, err := exchange(t, w.plain, w.b.addr+":9000", "direct"); err != nil || got != "direct" {
		t.Fatalf("after removal db is reached directly: %q, %v", got, err)
	}
}
