package hooks

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/translate"
)

// tcpMesh has a workload "db" serving a TCP port, an unknown-protocol port
// and an HTTP port, a gateway with a TCP server, a TLS-terminating server
// and a TLS passthrough server, and policies that must bind all of them.
const tcpMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: data}
spec:
  hosts: [db.data.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 5432, name: tcp-db, protocol: TCP}
  - {number: 7000, name: opaque}
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: data}
spec: {address: 10.2.0.1, labels: {app: db}, serviceAccount: db}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: permissive, namespace: data}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/evil/sa/x"]}}]
  - from: [{source: {principals: ["cluster.local/ns/evil/sa/y"]}}]
    to: [{operation: {paths: ["/admin"]}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"]}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["db.example.com"]
    tls: {mode: SIMPLE, credentialName: db-cert}
  - port: {number: 443, name: passthrough, protocol: TLS}
    hosts: ["pass.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp: [{route: [{destination: {host: db.data.svc.cluster.local, port: {number: 5432}}}]}]
  tls:
  - match: [{sniHosts: [pass.example.com]}]
    route: [{destination: {host: db.data.svc.cluster.local, port: {number: 5432}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
`

func tcpSnapshot(t *testing.T, extra string, mc mesh.MeshConfig) *mesh.Snapshot {
	t.Helper()
	cfgs, _, err := schema.DecodeAll([]byte(tcpMesh+extra), mesh.Source{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return mesh.NewSnapshot(mc, cfgs)
}

var (
	dbProxy = &mesh.Proxy{ID: "db-1.data", Type: mesh.ProxySidecar, Namespace: "data", ServiceAccount: "db",
		Labels: mesh.Labels{"app": "db"}, IPs: []string{"10.2.0.1"}}
	gwProxy = &mesh.Proxy{ID: "gw.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system",
		ServiceAccount: "ingressgateway", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"10.0.0.10"}}
)

// tcpChains returns, per chain of the listeners that receive traffic for
// the proxy (virtualInbound, or every gateway listener) ending in
// tcp_proxy, the names of the network filters before it.
func tcpChains(t *testing.T, res *translate.Resources, p *mesh.Proxy) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range res.Listeners {
		if p.Type == mesh.ProxySidecar && l.GetName() != translate.VirtualInbound {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			fs := fc.GetFilters()
			if len(fs) == 0 || fs[len(fs)-1].GetName() != translate.FilterTCP {
				continue
			}
			var names []string
			for _, f := range fs[:len(fs)-1] {
				names = append(names, f.GetName())
			}
			out[l.GetName()+"/"+fc.GetName()] = names
		}
	}
	return out
}

func gen(t *testing.T, snap *mesh.Snapshot, p *mesh.Proxy, h translate.Hooks) *translate.Resources {
	t.Helper()
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), h)
	if err := res.Validate(); err != nil {
		t.Fatalf("%s: generated resources do not validate: %v", p.ID, err)
	}
	return res
}

// TestTCPChainsAuthorized is the regression test of issue 12 hole 1: every
// chain proxying opaque TCP to a sidecar's workload (a TCP port and an
// unknown-protocol port, in each PeerAuthentication variant, and the
// inbound passthrough chain) and every gateway TCP, TLS-terminated and
// TLS passthrough chain holds Ward's authorization before tcp_proxy; the
// DENY by principal and the ALLOW-nothing are in it.
func TestTCPChainsAuthorized(t *testing.T) {
	snap := tcpSnapshot(t, "", mesh.MeshConfig{})
	for _, tc := range []struct {
		proxy      *mesh.Proxy
		wantChains []string // substrings of chain keys that must be present
		wantRule   string
		wantFilter string
	}{
		{dbProxy, []string{"inbound|5432||", "inbound|7000||", "virtualInbound-catchall"}, "ns[data]-policy[deny-evil]-rule[0]", "ward.authz.rbac.deny"},
		{gwProxy, []string{"0.0.0.0_31400/tcp:", "0.0.0.0_15443/tcp:", "0.0.0.0_443/passthrough:pass.example.com"}, "", "ward.authz.rbac.allow"},
	} {
		res := gen(t, snap, tc.proxy, New(Config{}))
		chains := tcpChains(t, res, tc.proxy)
		for _, want := range tc.wantChains {
			n := 0
			for k := range chains {
				if strings.Contains(k, want) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s: no TCP chain %q among %v", tc.proxy.ID, want, keys(chains))
			}
		}
		if tc.proxy == dbProxy && countContaining(keys(chains), "inbound|5432||") < 2 {
			t.Errorf("%s: PERMISSIVE port 5432 should have several chain variants, got %v", tc.proxy.ID, keys(chains))
		}
		for k, names := range chains {
			if indexOf(names, tc.wantFilter) < 0 {
				t.Errorf("%s: chain %s has network filters %v before tcp_proxy, want %s", tc.proxy.ID, k, names, tc.wantFilter)
			}
		}
		if tc.wantRule != "" && !hasNetRBACRule(t, res, tc.wantRule) {
			t.Errorf("%s: no network RBAC policy %s", tc.proxy.ID, tc.wantRule)
		}
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func countContaining(list []string, sub string) int {
	n := 0
	for _, s := range list {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// hasNetRBACRule reports whether a network RBAC filter on a virtualInbound
// chain holds the named policy.
func hasNetRBACRule(t *testing.T, res *translate.Resources, rule string) bool {
	t.Helper()
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				r := &rbacnet.RBAC{}
				if f.GetTypedConfig().UnmarshalTo(r) != nil {
					continue
				}
				if _, ok := r.GetRules().GetPolicies()[rule]; ok {
					return true
				}
			}
		}
	}
	return false
}

// TestTCPChainsExtAuthzAndCustom: in ext_authz mode the TCP chains call
// Ward's server through the ext_authz network filter; a CUSTOM policy with
// an external provider gets its gated network ext_authz filter, before
// tcp_proxy.
func TestTCPChainsExtAuthzAndCustom(t *testing.T) {
	custom := `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  action: CUSTOM
  provider: {name: opa-ext}
  rules: [{from: [{source: {namespaces: ["other"]}}]}]
`
	mc := mesh.MeshConfig{ExtensionProviders: []mesh.ExtensionProvider{{Name: "opa-ext", EnvoyExtAuthzGRPC: &mesh.ExtAuthzGRPC{Service: "opa.ext.svc.cluster.local", Port: 9191}}}}
	snap := tcpSnapshot(t, custom, mc)
	target, err := ParseExtAuthzTarget("127.0.0.1:9191")
	if err != nil {
		t.Fatal(err)
	}
	target.ServerID = spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/ward")
	h := New(Config{ExtAuthz: target, Authz: authz.HookConfig{ProviderCluster: func(ep mesh.ExtensionProvider) string {
		return "outbound|9191||" + ep.EnvoyExtAuthzGRPC.Service
	}}})
	res := gen(t, snap, dbProxy, h)
	chains := tcpChains(t, res, dbProxy)
	if len(chains) == 0 {
		t.Fatal("no TCP chains")
	}
	for k, names := range chains {
		ea, cu := indexOf(names, "ward.authz.ext_authz"), indexOf(names, "ward.authz.custom.opa-ext")
		if ea < 0 || cu < 0 || cu > ea {
			t.Errorf("chain %s: network filters %v, want the CUSTOM provider's then Ward's ext_authz", k, names)
		}
	}
}

// TestTCPChainsFailClosed: when the authorization filters cannot be built
// (an applicable policy is invalid), every TCP chain denies everything.
func TestTCPChainsFailClosed(t *testing.T) {
	bad := `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: data}
spec:
  action: DENY
  rules: [{to: [{operation: {ports: ["http"]}}]}]
`
	// The schema decodes it (validation, which rejects it, is a separate
	// step the file source runs); the compiler rejects it too.
	cfgs, _, err := schema.DecodeAll([]byte(tcpMesh+bad), mesh.Source{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
	res := gen(t, snap, dbProxy, New(Config{}))
	chains := tcpChains(t, res, dbProxy)
	for k, names := range chains {
		if len(names) != 1 || names[0] != authz.FilterName("rbac.deny_all") {
			t.Errorf("chain %s: network filters %v, want only the deny-all filter", k, names)
		}
	}
	if len(chains) == 0 {
		t.Fatal("no TCP chains")
	}
}

// TestProxylessTCPPortTCPSemantics: grpc-go serves every port with an HTTP
// connection manager, so a proxyless server's TCP-protocol port gets HTTP
// RBAC filters, but built with TCP semantics: the DENY rule limited to
// /admin is broadened to every call of that principal (as on an Envoy TCP
// chain), while the HTTP port keeps the path condition.
func TestProxylessTCPPortTCPSemantics(t *testing.T) {
	snap := tcpSnapshot(t, "", mesh.MeshConfig{})
	p := &mesh.Proxy{ID: "grpc~db-1.data", Type: mesh.ProxyGRPC, Namespace: "data", ServiceAccount: "db",
		Labels: mesh.Labels{"app": "db"}, IPs: []string{"10.2.0.1"}}
	res := gen(t, snap, p, New(Config{}))
	rule := "ns[data]-policy[deny-evil]-rule[1]"
	for port, wantAny := range map[string]bool{":5432": true, ":7000": true, ":8080": false} {
		var deny *rbachttp.RBAC
		for _, l := range res.Listeners {
			if !strings.HasSuffix(l.GetName(), port) {
				continue
			}
			for _, fc := range l.GetFilterChains() {
				hcm := &hcmv3.HttpConnectionManager{}
				if fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm) != nil {
					t.Fatalf("%s: chain %s is not an HCM", l.GetName(), fc.GetName())
				}
				for _, hf := range hcm.GetHttpFilters() {
					if hf.GetName() == authz.FilterName("rbac.deny") {
						deny = &rbachttp.RBAC{}
						if err := hf.GetTypedConfig().UnmarshalTo(deny); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		if deny == nil {
			t.Errorf("port %s: no DENY RBAC filter", port)
			continue
		}
		pol := deny.GetRules().GetPolicies()[rule]
		if pol == nil {
			t.Errorf("port %s: DENY filter lacks %s", port, rule)
			continue
		}
		_, isAny := pol.GetPermissions()[0].GetRule().(*rbacv3.Permission_Any)
		if isAny != wantAny {
			t.Errorf("port %s: %s permission any = %v, want %v (TCP semantics on TCP ports only): %v", port, rule, isAny, wantAny, pol.GetPermissions())
		}
	}
}

// TestRequestPrincipalWildcardsKeepFilters is issue 12 hole 4 in the
// assembled output: an issuer-prefix, a subject-suffix or a "/"-holding
// request principal used to fail the RBAC build, which installed a
// deny-all filter on every inbound chain of the workload. Now the
// workload's HTTP chains carry its real ALLOW filter with the rule, and no
// deny-all.
func TestRequestPrincipalWildcardsKeepFilters(t *testing.T) {
	pol := `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example.com*", "*/a/b", "https://issuer.example.com/a/b"]}}]
`
	res := gen(t, tcpSnapshot(t, pol, mesh.MeshConfig{}), dbProxy, New(Config{}))
	var inbound []*listener.Listener
	for _, l := range res.Listeners {
		if l.GetName() == translate.VirtualInbound {
			inbound = append(inbound, l)
		}
	}
	names := httpFilterNames(t, inbound, translate.VirtualInbound)
	if indexOf(names, "deny_all") >= 0 || indexOf(names, "ward.authz.rbac.allow") < 0 {
		t.Fatalf("inbound HTTP filters %v: want the ALLOW filter, no deny-all", names)
	}
	for k, fs := range tcpChains(t, res, dbProxy) {
		if indexOf(fs, "deny_all") >= 0 {
			t.Errorf("TCP chain %s: %v holds the deny-all filter", k, fs)
		}
	}
}

// TestTCPChainsGolden pins the assembled output reviewed for issue 12:
// the db sidecar's virtualInbound listener (network RBAC before tcp_proxy
// on each TCP variant and the passthrough chain, HTTP RBAC in the HCM
// with BASE path normalisation) and the gateway's TCP listener.
func TestTCPChainsGolden(t *testing.T) {
	snap := tcpSnapshot(t, "", mesh.MeshConfig{})
	for name, tc := range map[string]struct {
		proxy    *mesh.Proxy
		listener string
	}{
		"tcp-sidecar-inbound": {dbProxy, translate.VirtualInbound},
		"tcp-gateway-31400":   {gwProxy, "0.0.0.0_31400"},
	} {
		res := gen(t, snap, tc.proxy, New(Config{}))
		var l *listener.Listener
		for _, x := range res.Listeners {
			if x.GetName() == tc.listener {
				l = x
			}
		}
		if l == nil {
			t.Fatalf("%s: no listener %s", name, tc.listener)
		}
		golden(t, name, l)
	}
}
