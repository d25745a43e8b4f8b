package node

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Capture ports, opened inside every enrolled workload's network
// namespace (Istio's in-pod mode).
const (
	PortOutbound = 15001 // the workload's outgoing TCP, redirected
	PortInbound  = 15006 // plaintext callers, redirected
	PortHBONE    = 15008 // tunnels from other node proxies
)

// CaptureTable is the nf_tables table (family inet) the node proxy owns
// in every enrolled workload's network namespace.
const CaptureTable = "ward-node"

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

// installCapture replaces the proxy's capture in the namespace at path:
// the nf_tables table in one netlink transaction, then the policy route.
// Chains an earlier, iptables-based `ward node` left there are removed
// when that is possible (see removeLegacy); warn reports what remains.
func installCapture(path string, warn func(msg string, args ...any)) error {
	removeLegacy(path, warn)
	if err := applyTable(path, true); err != nil {
		return err
	}
	if err := installRoute(path); err != nil {
		return fmt.Errorf("install capture in %s: %w", path, err)
	}
	return nil
}

// removeCapture deletes the proxy's table, policy rule and route; what is
// already gone is not an error, so it is safe to call twice.
func removeCapture(path string) error {
	// The rule first: without it nothing uses the route.
	rerr := removeRoute(path)
	terr := applyTable(path, false)
	if rerr != nil {
		return fmt.Errorf("remove capture in %s: %w", path, rerr)
	}
	return terr
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
