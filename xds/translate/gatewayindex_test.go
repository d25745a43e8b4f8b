package translate

import (
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// The gateway host index admits exactly the (VirtualService, host) pairs a
// scan of every VirtualService bound to the gateway admits, in the same
// order, for exact, wildcard and mixed server hosts, short and qualified
// gateway names, and VirtualServices bound elsewhere.
func TestGatewayHostsMatchScan(t *testing.T) {
	vs := func(name, ns string, gws []string, hosts ...string) *vsEntry {
		spec := &networking.VirtualService{Hosts: hosts, Gateways: gws}
		e := &vsEntry{cfg: &mesh.Config{Meta: mesh.Meta{Name: name, Namespace: ns}, Spec: spec}, spec: spec}
		for _, h := range hosts {
			e.hosts = append(e.hosts, Qualify(h, ns))
		}
		return e
	}
	entries := []*vsEntry{
		vs("a", "gw", []string{"ingress"}, "a.example.com", "*.x.com", "b.example.com"),
		vs("b", "apps", []string{"gw/ingress", "mesh"}, "c.example.com", "b.example.com"),
		vs("c", "apps", []string{"ingress"}, "d.example.com"), // apps/ingress: another gateway
		vs("d", "gw", []string{"ingress", "gw/ingress"}, "*", "short"),
		vs("e", "gw", []string{"mesh"}, "a.example.com"),
	}
	ix := &Index{vs: entries, byGateway: indexGateways(entries)}
	scan := func(gw string, allowed hostSet) []gatewayHost {
		var out []gatewayHost
		for _, e := range entries {
			if !boundTo(e, gw) {
				continue
			}
			for _, h := range e.hosts {
				if allowed.allows(h) {
					out = append(out, gatewayHost{cfg: e.cfg, host: h})
				}
			}
		}
		return out
	}
	for _, gw := range []string{"gw/ingress", "apps/ingress", "mesh", "none/none"} {
		for _, hosts := range [][]string{
			{"b.example.com", "foo.x.com"}, {"*"}, {"*.example.com"}, {"c.example.com", "a.example.com"},
			{"short.gw.svc.cluster.local"}, {"nothing.example.org"},
		} {
			allowed := newHostSet(hosts)
			var got []gatewayHost
			for _, gh := range ix.gatewayHosts(gw, allowed) {
				if allowed.allows(gh.host) {
					got = append(got, gh)
				}
			}
			if want := scan(gw, allowed); gw == "mesh" {
				if len(got) != 0 {
					t.Errorf("mesh is not a gateway: got %v", got)
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("gateway %s, server hosts %v: index gives %v, scan %v", gw, hosts, got, want)
			}
		}
	}
	if got := ix.GatewayVirtualServices("gw/ingress"); len(got) != 3 || got[0].Name != "a" || got[1].Name != "b" || got[2].Name != "d" {
		t.Errorf("GatewayVirtualServices(gw/ingress) = %v, want a, b, d once each", got)
	}
}
