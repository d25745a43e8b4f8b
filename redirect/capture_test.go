package redirect_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/wardmesh/ward/redirect"
)

const (
	appUID   = 1000
	proxyUID = redirect.DefaultProxyID
)

// podConfig is the default capture plus what a pod's annotations add:
// excludeInboundPorts 9090, excludeOutboundPorts 9443,
// excludeOutboundIPRanges the peer's second addresses.
func podConfig(l *lab) redirect.Config {
	cfg := redirect.DefaultConfig()
	cfg.NetNS = l.pod
	cfg.ExcludeInboundPorts = []uint16{9090}
	cfg.ExcludeOutboundPorts = []uint16{9443}
	cfg.ExcludeOutboundRanges = []netip.Prefix{netip.MustParsePrefix("10.253.0.3/32"), netip.MustParsePrefix("fd00:253::3/128")}
	return cfg
}

// listen starts, for both families, the proxy's capture listeners and an
// application on 8080, 7070 and the excluded ports in the pod, and a
// server on 8080 and 9443 in the peer.
func listen(t *testing.T, l *lab) {
	for _, nw := range []struct{ net, any string }{{"tcp4", "0.0.0.0"}, {"tcp6", "::"}} {
		at := func(p string) string { return "[" + nw.any + "]:" + p }
		serve(t, l.pod, nw.net, at("15001"), "outbound", true)
		serve(t, l.pod, nw.net, at("15006"), "inbound", true)
		for _, p := range []string{"8080", "7070", "15020", "15090", "9090"} {
			serve(t, l.pod, nw.net, at(p), "pod", false)
		}
		for _, p := range []string{"8080", "9443"} {
			serve(t, l.peer, nw.net, at(p), "peer", false)
		}
	}
}

// TestCapture proves the installed rules with real connections, for IPv4
// and IPv6: who reaches what, and with which original destination.
func TestCapture(t *testing.T) {
	l := newLab(t)
	listen(t, l)
	if err := redirect.Install(podConfig(l)); err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				uid, gid uint32 // from the pod; uid 0 means from the peer namespace
				to       string
				want     string
			}{
				{"app outbound is captured", appUID, appUID, f.at(f.peer, 8080), "outbound " + f.at(f.peer, 8080)},
				{"proxy uid outbound bypasses", proxyUID, proxyUID, f.at(f.peer, 8080), "peer " + f.at(f.peer, 8080)},
				{"proxy gid outbound bypasses", appUID, proxyUID, f.at(f.peer, 8080), "peer " + f.at(f.peer, 8080)},
				{"excluded outbound port", appUID, appUID, f.at(f.peer, 9443), "peer " + f.at(f.peer, 9443)},
				{"excluded outbound range", appUID, appUID, f.at(f.peer2, 8080), "peer " + f.at(f.peer2, 8080)},
				{"loopback is not captured", appUID, appUID, f.at(f.local, 8080), "pod " + f.at(f.local, 8080)},
				{"app to its own pod IP goes direct", appUID, appUID, f.at(f.pod, 8080), "pod " + f.at(f.pod, 8080)},
				{"proxy to its own pod IP enters inbound", proxyUID, proxyUID, f.at(f.pod, 8080), "inbound " + f.at(f.pod, 8080)},
				{"proxy to its own status port goes direct", proxyUID, proxyUID, f.at(f.pod, 15020), "pod " + f.at(f.pod, 15020)},
				{"inbound is captured", 0, 0, f.at(f.pod, 8080), "inbound " + f.at(f.pod, 8080)},
				{"inbound 15020 excluded", 0, 0, f.at(f.pod, 15020), "pod " + f.at(f.pod, 15020)},
				{"inbound 15090 excluded", 0, 0, f.at(f.pod, 15090), "pod " + f.at(f.pod, 15090)},
				{"inbound annotation-excluded port", 0, 0, f.at(f.pod, 9090), "pod " + f.at(f.pod, 9090)},
			} {
				var got string
				if tc.uid == 0 {
					got = dialFrom(t, l.peer, tc.to)
				} else {
					got = dialAs(t, l.pod, tc.uid, tc.gid, tc.to)
				}
				if got != tc.want {
					t.Errorf("%s: uid %d gid %d → %s reached %q, want %q", tc.name, tc.uid, tc.gid, tc.to, got, tc.want)
				}
			}
		})
	}
}

// TestInboundPassthroughSource: the proxy's connection to its own pod IP
// from 127.0.0.6 (Envoy's InboundPassthroughCluster binds it, see
// xds/translate) goes straight to the application; the same connection
// from the pod IP would be captured again and loop through 15006.
func TestInboundPassthroughSource(t *testing.T) {
	l := newLab(t)
	listen(t, l)
	if err := redirect.Install(podConfig(l)); err != nil {
		t.Fatal(err)
	}
	to := families[0].at(families[0].pod, 7070)
	if got, want := runAs(t, l.pod, proxyUID, proxyUID, helperEnv+"="+to, srcEnv+"=127.0.0.6"), "pod "+to; got != want {
		t.Errorf("proxy from 127.0.0.6 → %s reached %q, want %q", to, got, want)
	}
	if got, want := dialAs(t, l.pod, proxyUID, proxyUID, to), "inbound "+to; got != want {
		t.Errorf("proxy from the pod IP → %s reached %q, want %q", to, got, want)
	}
}

// TestCaptureIncludeLists: with includeInboundPorts and
// includeOutboundIPRanges only the listed ports and ranges are captured.
func TestCaptureIncludeLists(t *testing.T) {
	l := newLab(t)
	listen(t, l)
	cfg := podConfig(l)
	cfg.ExcludeOutboundRanges = nil
	cfg.IncludeInboundPorts = redirect.PortSet{Ports: []uint16{8080}}
	cfg.IncludeOutboundRanges = redirect.RangeSet{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.253.0.2/32"), netip.MustParsePrefix("fd00:253::2/128")}}
	if err := redirect.Install(cfg); err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for to, want := range map[string]string{
			f.at(f.peer, 8080):  "outbound " + f.at(f.peer, 8080),
			f.at(f.peer2, 8080): "peer " + f.at(f.peer2, 8080),
		} {
			if got := dialAs(t, l.pod, appUID, appUID, to); got != want {
				t.Errorf("app → %s reached %q, want %q", to, got, want)
			}
		}
		for to, want := range map[string]string{
			f.at(f.pod, 8080): "inbound " + f.at(f.pod, 8080),
			f.at(f.pod, 7070): "pod " + f.at(f.pod, 7070),
		} {
			if got := dialFrom(t, l.peer, to); got != want {
				t.Errorf("peer → %s reached %q, want %q", to, got, want)
			}
		}
		// The proxy calling its own pod: only included ports go inbound.
		if got, want := dialAs(t, l.pod, proxyUID, proxyUID, f.at(f.pod, 7070)), "pod "+f.at(f.pod, 7070); got != want {
			t.Errorf("proxy → own pod 7070 reached %q, want %q", got, want)
		}
	}
}

// TestReinstallAndCleanup: installing again replaces the table (exactly
// one, with the planned rules); removing it sends traffic direct, and
// removing twice is fine.
func TestReinstallAndCleanup(t *testing.T) {
	l := newLab(t)
	listen(t, l)
	cfg := podConfig(l)
	for range 3 {
		if err := redirect.Install(cfg); err != nil {
			t.Fatal(err)
		}
	}
	tables, rules := countRules(t, l.pod)
	want := 0
	for _, c := range redirect.Plan(cfg) {
		want += len(c.Rules)
	}
	if tables != 1 || rules != want {
		t.Fatalf("after three installs: %d inet tables named ward with %d rules, want 1 with %d", tables, rules, want)
	}
	peer := families[0].at(families[0].peer, 8080)
	if got := dialAs(t, l.pod, appUID, appUID, peer); got != "outbound "+peer {
		t.Fatalf("after reinstall app → %s reached %q", peer, got)
	}
	for range 2 {
		if err := redirect.Remove(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := redirect.Installed(cfg); err != nil || ok {
		t.Fatalf("after cleanup: installed %v, err %v", ok, err)
	}
	for _, f := range families {
		if got, want := dialAs(t, l.pod, appUID, appUID, f.at(f.peer, 8080)), "peer "+f.at(f.peer, 8080); got != want {
			t.Errorf("after cleanup app → peer reached %q, want %q", got, want)
		}
		if got, want := dialFrom(t, l.peer, f.at(f.pod, 8080)), "pod "+f.at(f.pod, 8080); got != want {
			t.Errorf("after cleanup peer → pod reached %q, want %q", got, want)
		}
	}
}

// countRules counts inet tables named ward in the namespace and their
// rules, as the kernel lists them.
func countRules(t *testing.T, ns string) (tables, rules int) {
	t.Helper()
	inNS(t, ns, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		for _, tb := range ts {
			if tb.Name != redirect.DefaultTable {
				continue
			}
			tables++
			for _, ch := range chains {
				if ch.Table.Name != tb.Name {
					continue
				}
				rs, err := c.GetRules(tb, ch)
				if err != nil {
					return err
				}
				rules += len(rs)
			}
		}
		return nil
	})
	return tables, rules
}

// TestInstallWithoutCapability: a process without CAP_NET_ADMIN gets an
// error that names the table and the capability, and nothing changes.
func TestInstallWithoutCapability(t *testing.T) {
	l := newLab(t)
	got := runAs(t, l.pod, appUID, appUID, installEnv+"=1")
	for _, want := range []string{"redirect: install nf_tables table inet ward", "CAP_NET_ADMIN"} {
		if !strings.Contains(got, want) {
			t.Errorf("install as uid %d: %q does not say %q", appUID, got, want)
		}
	}
	if tables, _ := countRules(t, l.pod); tables != 0 {
		t.Errorf("%d tables after a failed install", tables)
	}
}
