package node

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The policy route for tproxyMark, over a netlink socket bound to the
// pod's namespace (no `ip`, no nsenter): `ip rule add fwmark 0x111/0xfff
// pref 32764 lookup 100` and `ip route add local 0.0.0.0/0 dev lo table
// 100`.

func tproxyRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Mark = tproxyMark
	mask := uint32(tproxyMask)
	r.Mask = &mask
	r.Priority = tproxyPref
	r.Table = tproxyTable
	return r
}

func tproxyRoute(lo int) *netlink.Route {
	return &netlink.Route{
		Family:    unix.AF_INET,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Table:     tproxyTable,
		LinkIndex: lo,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
	}
}

// withRoutes runs fn with a netlink handle bound to the namespace at path.
func withRoutes(path string, fn func(*netlink.Handle) error) error {
	ns, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	return fn(h)
}

// installRoute replaces the route and installs the rule exactly once.
func installRoute(path string) error {
	return withRoutes(path, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("link lo: %w", err)
		}
		if err := h.RouteReplace(tproxyRoute(lo.Attrs().Index)); err != nil {
			return fmt.Errorf("route local 0.0.0.0/0 dev lo table %d: %w", tproxyTable, err)
		}
		if err := delRules(h); err != nil {
			return err
		}
		if err := h.RuleAdd(tproxyRule()); err != nil {
			return fmt.Errorf("rule fwmark %#x/%#x pref %d lookup %d: %w", tproxyMark, tproxyMask, tproxyPref, tproxyTable, err)
		}
		return nil
	})
}

// removeRoute deletes the rule, then the route; what is missing is not an
// error.
func removeRoute(path string) error {
	return withRoutes(path, func(h *netlink.Handle) error {
		if err := delRules(h); err != nil {
			return err
		}
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("link lo: %w", err)
		}
		if err := h.RouteDel(tproxyRoute(lo.Attrs().Index)); err != nil && !gone(err) {
			return fmt.Errorf("delete route local 0.0.0.0/0 table %d: %w", tproxyTable, err)
		}
		return nil
	})
}

// delRules deletes every copy of the rule (an earlier proxy may have added
// it twice); bounded, as each pass removes one.
func delRules(h *netlink.Handle) error {
	for range 8 {
		err := h.RuleDel(tproxyRule())
		if gone(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete rule fwmark %#x/%#x pref %d: %w", tproxyMark, tproxyMask, tproxyPref, err)
		}
	}
	return fmt.Errorf("delete rule fwmark %#x/%#x pref %d: still present after 8 deletes", tproxyMark, tproxyMask, tproxyPref)
}

// gone reports whether err says the rule or route does not exist.
func gone(err error) bool {
	return isErrno(err, unix.ENOENT) || isErrno(err, unix.ESRCH)
}

func isErrno(err error, n unix.Errno) bool { return errors.Is(err, n) }
