package redirect

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults, as Istio's sidecar uses them.
const (
	DefaultTable        = "ward"
	DefaultInboundPort  = 15006
	DefaultOutboundPort = 15001
	DefaultProxyID      = 1337
)

// AlwaysExcludedInboundPorts are never captured inbound: HBONE (15008),
// the agent's status port (15020), the health port (15021) and Envoy's
// Prometheus port (15090), as Istio's injector excludes them.
var AlwaysExcludedInboundPorts = []uint16{15008, 15020, 15021, 15090}

// PortSet is a set of ports or all ports ("*"). The zero value is empty.
type PortSet struct {
	All   bool
	Ports []uint16
}

// RangeSet is a set of address prefixes or all addresses ("*"). The zero
// value is empty.
type RangeSet struct {
	All      bool
	Prefixes []netip.Prefix
}

// Empty reports whether s matches nothing.
func (s PortSet) Empty() bool { return !s.All && len(s.Ports) == 0 }

// Empty reports whether s matches nothing.
func (s RangeSet) Empty() bool { return !s.All && len(s.Prefixes) == 0 }

// String is the flag / annotation spelling of s.
func (s PortSet) String() string {
	if s.All {
		return "*"
	}
	parts := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ",")
}

// String is the flag / annotation spelling of s.
func (s RangeSet) String() string {
	if s.All {
		return "*"
	}
	parts := make([]string, len(s.Prefixes))
	for i, p := range s.Prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Config is what to capture. Zero ports and ids take the defaults; the
// zero PortSet and RangeSet capture nothing, so start from DefaultConfig.
type Config struct {
	Table        string // nf_tables table (family inet); default "ward"
	InboundPort  uint16 // default 15006
	OutboundPort uint16 // default 15001
	ProxyUID     uint32 // outbound traffic of this uid is not captured; default 1337
	ProxyGID     uint32 // nor of this gid; default 1337

	IncludeInboundPorts   PortSet  // inbound ports captured ("*": all)
	ExcludeInboundPorts   []uint16 // never captured inbound (with AlwaysExcludedInboundPorts)
	ExcludeOutboundPorts  []uint16 // destination ports never captured outbound
	IncludeOutboundRanges RangeSet // destinations captured outbound ("*": all)
	ExcludeOutboundRanges []netip.Prefix

	// NetNS is the path of the network namespace to act in (e.g.
	// /run/netns/x or /proc/PID/ns/net); "" is the caller's.
	NetNS string
}

// DefaultConfig captures all inbound ports and all outbound destinations,
// Istio's defaults.
func DefaultConfig() Config {
	return Config{IncludeInboundPorts: PortSet{All: true}, IncludeOutboundRanges: RangeSet{All: true}}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.InboundPort == 0 {
		c.InboundPort = DefaultInboundPort
	}
	if c.OutboundPort == 0 {
		c.OutboundPort = DefaultOutboundPort
	}
	if c.ProxyUID == 0 {
		c.ProxyUID = DefaultProxyID
	}
	if c.ProxyGID == 0 {
		c.ProxyGID = DefaultProxyID
	}
	return c
}

// excludedInbound is every port never captured inbound, sorted, unique.
func (c Config) excludedInbound() []uint16 {
	ports := append(slices.Clone(AlwaysExcludedInboundPorts), c.ExcludeInboundPorts...)
	slices.Sort(ports)
	return slices.Compact(ports)
}

// ParsePortSet parses "*", "" or a comma-separated list of ports (the
// syntax of traffic.sidecar.istio.io/includeInboundPorts).
func ParsePortSet(s string) (PortSet, error) {
	if strings.TrimSpace(s) == "*" {
		return PortSet{All: true}, nil
	}
	ports, err := ParsePorts(s)
	return PortSet{Ports: ports}, err
}

// ParsePorts parses a comma-separated list of ports; "" is none.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q: want 1-65535", f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// ParseRangeSet parses "*", "" or a comma-separated list of CIDRs (the
// syntax of traffic.sidecar.istio.io/includeOutboundIPRanges).
func ParseRangeSet(s string) (RangeSet, error) {
	if strings.TrimSpace(s) == "*" {
		return RangeSet{All: true}, nil
	}
	p, err := ParsePrefixes(s)
	return RangeSet{Prefixes: p}, err
}

// ParsePrefixes parses a comma-separated list of CIDRs (a bare address is
// its /32 or /128); "" is none. Unlike istio-iptables, which skips what it
// cannot parse, an invalid entry is an error: a skipped exclusion would
// capture traffic the pod asked to keep out of the proxy, and a skipped
// inclusion would let traffic bypass it.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := parsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return p.Masked(), nil
}
