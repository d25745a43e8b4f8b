package translate_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// The proxies of testdata/inboundip: each at the address of an endpoint
// it runs (same namespace, same identity).
var (
	inlineProxy = mesh.Proxy{ID: "sidecar~1.1.1.1~pod-0.bench~bench.svc.cluster.local", Type: mesh.ProxySidecar,
		Namespace: "bench", IPs: []string{"1.1.1.1"}}
	vmProxy = mesh.Proxy{ID: "grpc~1.1.1.2~vm-1.bench~bench.svc.cluster.local", Type: mesh.ProxyGRPC,
		Namespace: "bench", ServiceAccount: "vm", IPs: []string{"1.1.1.2"}}
)

// TestGoldenInboundByIP: a sidecar at an inline ServiceEntry endpoint's
// address gets inbound|8080|| (the endpoint's ports map) and inbound|9000||
// (the service port); a proxyless server at a selected WorkloadEntry's
// address gets its inbound listener on the WorkloadEntry's address and
// the service's target port, though its labels match no selector.
func TestGoldenInboundByIP(t *testing.T) {
	for name, p := range map[string]mesh.Proxy{"sidecar-inline": inlineProxy, "grpc-workloadentry": vmProxy} {
		t.Run(name, func(t *testing.T) {
			got := generate(t, load(t, "inboundip"), p)
			path := filepath.Join("testdata", "inboundip."+name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, toYAML(t, got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(fromYAML(t, path), got, protocmp.Transform()); diff != "" {
				t.Errorf("%s differs (-want +got); run go test -update to accept:\n%s", path, diff)
			}
		})
	}
}

func inboundNames(r *translate.Resources) []string {
	var out []string
	for _, c := range r.Clusters {
		if strings.HasPrefix(c.GetName(), "inbound|") && c.GetName() != translate.InboundPassthroughCluster {
			out = append(out, c.GetName())
		}
	}
	for _, l := range r.Listeners {
		if strings.HasPrefix(l.GetName(), translate.GRPCServerListenerPrefix) {
			out = append(out, l.GetName())
		}
		for _, fc := range l.GetFilterChains() {
			if l.GetName() == translate.VirtualInbound && fc.GetFilterChainMatch().GetDestinationPort() != nil {
				out = append(out, "chain "+fc.GetName())
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestInboundByIP: which proxies at an endpoint's address serve its
// service. The address alone is not enough: the proxy must be in the
// service's namespace (as in Istio) and run as the endpoint's identity
// (Ward only); gateways get no inbound side.
func TestInboundByIP(t *testing.T) {
	snap := load(t, "inboundip")
	with := func(p mesh.Proxy, f func(*mesh.Proxy)) mesh.Proxy { f(&p); return p }
	for _, tc := range []struct {
		name    string
		proxy   mesh.Proxy
		want    []string
		refused int
	}{
		{"inline endpoint, default service account", inlineProxy,
			[]string{"chain inbound|8080||", "chain inbound|9000||", "inbound|8080||", "inbound|9000||"}, 0},
		{"inline endpoint, explicit default service account", with(inlineProxy, func(p *mesh.Proxy) { p.ServiceAccount = "default" }),
			[]string{"chain inbound|8080||", "chain inbound|9000||", "inbound|8080||", "inbound|9000||"}, 0},
		{"inline endpoint, another service account", with(inlineProxy, func(p *mesh.Proxy) { p.ServiceAccount = "mallory" }), nil, 1},
		{"inline endpoint, another namespace", with(inlineProxy, func(p *mesh.Proxy) { p.Namespace = "other" }), nil, 0},
		{"inline endpoint, one of several IPs", with(inlineProxy, func(p *mesh.Proxy) { p.IPs = []string{"10.0.0.1", "1.1.1.1"} }),
			[]string{"chain inbound|8080||", "chain inbound|9000||", "inbound|8080||", "inbound|9000||"}, 0},
		{"inline endpoint, gateway", with(inlineProxy, func(p *mesh.Proxy) { p.Type = mesh.ProxyRouter }), nil, 0},
		{"workload entry, proxyless", vmProxy, []string{translate.GRPCServerListenerName("0.0.0.0", 17070),
			translate.GRPCServerListenerName("1.1.1.2", 17070), translate.GRPCServerListenerName("::", 17070)}, 0},
		{"workload entry, sidecar", with(vmProxy, func(p *mesh.Proxy) { p.Type = mesh.ProxySidecar }),
			[]string{"chain inbound|17070||", "inbound|17070||"}, 0},
		{"workload entry, the default service account", with(vmProxy, func(p *mesh.Proxy) { p.ServiceAccount = "" }), nil, 1},
		{"workload entry, another address", with(vmProxy, func(p *mesh.Proxy) { p.IPs = []string{"1.1.1.3"} }), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.proxy
			ix := translate.NewIndex(snap)
			sc := ix.Scope(&p)
			res := translate.Generate(ix, sc, translate.Hooks{})
			if err := res.Validate(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, inboundNames(res)); diff != "" {
				t.Errorf("inbound (-want +got):\n%s", diff)
			}
			if len(sc.Refused) != tc.refused {
				t.Errorf("refused claims %+v, want %d", sc.Refused, tc.refused)
			}
		})
	}
}
