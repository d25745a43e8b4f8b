package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// Capture ports, opened inside every enrolled workload's network
// namespace (Istio's in-pod mode).
const (
	PortOutbound = 15001 // the workload's outgoing TCP, redirected
	PortInbound  = 15006 // plaintext callers, redirected
	PortHBONE    = 15008 // tunnels from other node proxies
)

// Chains the node proxy owns in a workload's nat and mangle tables (and
// ip6tables filter table).
const (
	chainInbound  = "WARD_INBOUND"
	chainOutbound = "WARD_OUTPUT"
)

// Source-IP preservation, with Istio in-pod mode's values (istio cni
// pkg/iptables): connections the proxy opens to the application from the
// caller's address carry Mark when they arrive over lo; their conntrack
// entry gets tproxyMark, restored onto the application's replies, and a
// policy route delivers packets with tproxyMark locally, to the proxy's
// transparent socket, instead of out of eth0 to the real caller. A
// pod's namespace is its own, so the fixed table and priority cannot
// collide with another pod's.
const (
	tproxyMark  = 0x111
	tproxyMask  = 0xfff
	tproxyTable = 100
	tproxyPref  = 32764
)

// ruleset is the proxy's rules in one table of one family: chains it owns
// and the built-in chains that jump to them.
type ruleset struct {
	restore, cli, table string
	jumps               [][2]string // {built-in chain, owned chain}
	rules               string
}

// captureRules redirects, in the workload's namespace, every new outgoing
// IPv4 TCP connection to 15001 (except the proxy's own, marked, and
// loopback) and every incoming one to 15006 (except HBONE on 15008, which
// the proxy terminates itself). IPv6 is not proxied yet, so new IPv6 TCP
// connections other than loopback are refused both ways: without this an
// IPv6 caller would reach the application around STRICT mTLS. The mangle
// rules mark the replies to the proxy's transparent connections (see
// tproxyMark).
func captureRules() []ruleset {
	v4 := fmt.Sprintf(`*nat
:%[1]s - [0:0]
:%[2]s - [0:0]
-A PREROUTING -j %[1]s
-A OUTPUT -j %[2]s
-A %[1]s -p tcp --dport %[3]d -j RETURN
-A %[1]s -p tcp -j REDIRECT --to-ports %[4]d
-A %[2]s -m mark --mark %#[5]x -j RETURN
-A %[2]s -o lo -j RETURN
-A %[2]s -d 127.0.0.0/8 -j RETURN
-A %[2]s -p tcp -j REDIRECT --to-ports %[6]d
COMMIT
`, chainInbound, chainOutbound, PortHBONE, PortInbound, Mark, PortOutbound)
	v6 := fmt.Sprintf(`*filter
:%[1]s - [0:0]
:%[2]s - [0:0]
-A INPUT -j %[1]s
-A OUTPUT -j %[2]s
-A %[1]s -i lo -j RETURN
-A %[1]s -p tcp --syn -j REJECT --reject-with tcp-reset
-A %[2]s -o lo -j RETURN
-A %[2]s -m mark --mark %#[3]x -j RETURN
-A %[2]s -p tcp --syn -j REJECT --reject-with tcp-reset
COMMIT
`, chainInbound, chainOutbound, Mark)
	mangle := fmt.Sprintf(`*mangle
:%[1]s - [0:0]
:%[2]s - [0:0]
-A PREROUTING -j %[1]s
-A OUTPUT -j %[2]s
-A %[1]s -m mark --mark %#[3]x -j CONNMARK --set-xmark %#[4]x/%#[5]x
-A %[2]s -m connmark --mark %#[4]x/%#[5]x -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
`, chainInbound, chainOutbound, Mark, tproxyMark, tproxyMask)
	return []ruleset{
		{"iptables-restore", "iptables", "nat", [][2]string{{"PREROUTING", chainInbound}, {"OUTPUT", chainOutbound}}, v4},
		{"iptables-restore", "iptables", "mangle", [][2]string{{"PREROUTING", chainInbound}, {"OUTPUT", chainOutbound}}, mangle},
		{"ip6tables-restore", "ip6tables", "filter", [][2]string{{"INPUT", chainInbound}, {"OUTPUT", chainOutbound}}, v6},
	}
}

// installCapture replaces the proxy's rules in the namespace at path.
func installCapture(path string) error {
	removeCapture(path)
	for _, rs := range captureRules() {
		cmd := exec.Command("nsenter", "--net="+path, rs.restore, "--noflush")
		cmd.Stdin = strings.NewReader(rs.rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("install capture in %s (%s): %w: %s", path, rs.cli, err, bytes.TrimSpace(out))
		}
	}
	for _, args := range [][]string{routeArgs("add"), ruleArgs("add")} {
		if out, err := ipCmd(path, args).CombinedOutput(); err != nil {
			return fmt.Errorf("install capture in %s (ip %s): %w: %s", path, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// ruleArgs and routeArgs are the policy route for tproxyMark: `ip rule
// <op> fwmark 0x111/0xfff pref 32764 lookup 100` and `ip route <op> local
// 0.0.0.0/0 dev lo table 100`.
func ruleArgs(op string) []string {
	return []string{"-4", "rule", op, "fwmark", fmt.Sprintf("%#x/%#x", tproxyMark, tproxyMask), "pref", fmt.Sprint(tproxyPref), "lookup", fmt.Sprint(tproxyTable)}
}

func routeArgs(op string) []string {
	return []string{"-4", "route", op, "local", "0.0.0.0/0", "dev", "lo", "table", fmt.Sprint(tproxyTable)}
}

func ipCmd(path string, args []string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + path, "ip"}, args...)...)
}

// removeCapture deletes the proxy's jumps, chains, policy rule and route;
// what is already gone is not an error, so it is safe to call twice.
func removeCapture(path string) error {
	var errs []string
	// The rule first: without it nothing uses the table. A rule added
	// twice is deleted twice (bounded: each pass removes one).
	for range 8 {
		out, err := ipCmd(path, ruleArgs("del")).CombinedOutput()
		if err != nil {
			if !missing(out) {
				errs = append(errs, fmt.Sprintf("ip rule del: %s", bytes.TrimSpace(out)))
			}
			break
		}
	}
	if out, err := ipCmd(path, routeArgs("del")).CombinedOutput(); err != nil && !missing(out) {
		errs = append(errs, fmt.Sprintf("ip route del: %s", bytes.TrimSpace(out)))
	}
	for _, rs := range captureRules() {
		var cmds [][]string
		for _, j := range rs.jumps {
			cmds = append(cmds, []string{"-D", j[0], "-j", j[1]})
		}
		for _, j := range rs.jumps {
			cmds = append(cmds, []string{"-F", j[1]}, []string{"-X", j[1]})
		}
		for _, args := range cmds {
			cmd := exec.Command("nsenter", append([]string{"--net=" + path, rs.cli, "-w", "-t", rs.table}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil && !missing(out) {
				errs = append(errs, fmt.Sprintf("%s %v: %s", rs.cli, args, bytes.TrimSpace(out)))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove capture in %s: %s", path, strings.Join(errs, "; "))
	}
	return nil
}

func missing(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "No chain/target/match") || strings.Contains(s, "does not exist") || strings.Contains(s, "Bad rule") ||
		strings.Contains(s, "No such file or directory") || strings.Contains(s, "No such process") // ip rule del, ip route del
}

// originalDst is the destination a redirected connection was addressed
// to (SO_ORIGINAL_DST, IPv4).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original dst: %T is not TCP", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var mreq *unix.IPv6Mreq
	var serr error
	// SO_ORIGINAL_DST fills a sockaddr_in; IPv6Mreq is a 20-byte buffer
	// that holds it (the usual way to read it without cgo).
	err = raw.Control(func(fd uintptr) {
		mreq, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IP, unix.SO_ORIGINAL_DST)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original dst: %w", err)
	}
	b := mreq.Multiaddr
	port := binary.BigEndian.Uint16(b[2:4])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
}
