package hooks

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/translate"
)

func examples(t *testing.T) *mesh.Snapshot {
	t.Helper()
	res, err := file.Load("../../examples")
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load examples: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

func generate(t *testing.T, snap *mesh.Snapshot, p *mesh.Proxy) *translate.Resources {
	t.Helper()
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), New(Config{}))
	if err := res.Validate(); err != nil {
		t.Fatalf("generated resources for %s do not validate: %v", p.ID, err)
	}
	return res
}

// httpFilterNames lists the HTTP filters of every HCM in listeners whose
// name has the prefix.
func httpFilterNames(t *testing.T, ls []*listener.Listener, prefix string) []string {
	t.Helper()
	var out []string
	for _, l := range ls {
		if !strings.HasPrefix(l.GetName(), prefix) {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					out = append(out, hf.GetName())
				}
			}
		}
	}
	return out
}

func indexOf(list []string, sub string) int {
	for i, s := range list {
		if strings.Contains(s, sub) {
			return i
		}
	}
	return -1
}

// TestSidecarStrictAndAuthz: bookinfo is STRICT, so the reviews sidecar's
// inbound chains all require TLS, and its inbound HTTP filters carry the
// authorization filter before the router.
func TestSidecarStrictAndAuthz(t *testing.T) {
	snap := examples(t)
	p := &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", ServiceAccount: "reviews",
		Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}
	res := generate(t, snap, p)
	var inbound *listener.Listener
	for _, l := range res.Listeners {
		if l.GetName() == "virtualInbound" {
			inbound = l
		}
	}
	if inbound == nil {
		t.Fatal("no virtualInbound listener")
	}
	for _, fc := range inbound.GetFilterChains() {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 9080 && fc.GetTransportSocket() == nil {
			t.Errorf("STRICT port 9080 has a plaintext chain %q", fc.GetName())
		}
	}
	names := httpFilterNames(t, []*listener.Listener{inbound}, "virtualInbound")
	authzAt, routerAt := indexOf(names, "ward.authz"), indexOf(names, "router")
	if authzAt < 0 || routerAt < authzAt {
		t.Errorf("inbound HTTP filters %v: want Ward's authorization filter before the router", names)
	}
}

// TestGatewayJWTBeforeAuthz: the ingress gateway has a RequestAuthentication
// and an ALLOW policy; jwt_authn must come before authorization.
func TestGatewayJWTBeforeAuthz(t *testing.T) {
	snap := examples(t)
	p := &mesh.Proxy{ID: "ingressgateway-1.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system",
		ServiceAccount: "ingressgateway", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"127.0.0.10"}}
	res := generate(t, snap, p)
	names := httpFilterNames(t, res.Listeners, "")
	jwtAt, authzAt := indexOf(names, "jwt_authn"), indexOf(names, "ward.authz")
	if jwtAt < 0 || authzAt < 0 || jwtAt > authzAt {
		t.Fatalf("gateway HTTP filters %v: want jwt_authn before Ward's authorization", names)
	}
}

// TestFingerprintFollowsPolicy: changing a policy that applies to a proxy
// changes its fingerprint; one that does not apply leaves it alone.
func TestFingerprintFollowsPolicy(t *testing.T) {
	snap := examples(t)
	h := New(Config{})
	ratings := &mesh.Proxy{ID: "r", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "ratings"}}
	payments := &mesh.Proxy{ID: "p", Type: mesh.ProxySidecar, Namespace: "payments", Labels: mesh.Labels{"app": "payments"}}
	before := [2]string{h.Fingerprint(snap, ratings), h.Fingerprint(snap, payments)}

	var cfgs []*mesh.Config
	for _, k := range snap.Keys() {
		c, _ := snap.Get(k)
		if k.Kind == mesh.KindAuthorizationPolicy && k.Name == "ratings-viewer" {
			continue
		}
		cfgs = append(cfgs, c)
	}
	after := mesh.NewSnapshot(snap.Mesh(), cfgs)
	if h.Fingerprint(after, ratings) == before[0] {
		t.Error("removing ratings-viewer did not change the ratings proxy's fingerprint")
	}
	if h.Fingerprint(after, payments) != before[1] {
		t.Error("removing a bookinfo policy changed the payments proxy's fingerprint")
	}
}

// TestInboundChainNamesUnique: a PERMISSIVE port has several chain
// variants (mTLS, plaintext, passthrough); Envoy rejects a listener whose
// chains share a name.
func TestInboundChainNamesUnique(t *testing.T) {
	snap := examples(t)
	p := &mesh.Proxy{ID: "payments-1.payments", Type: mesh.ProxySidecar, Namespace: "payments", ServiceAccount: "payments",
		Labels: mesh.Labels{"app": "payments", "version": "v1"}, IPs: []string{"127.0.0.30"}}
	res := generate(t, snap, p)
	for _, l := range res.Listeners {
		seen := map[string]bool{}
		for _, fc := range l.GetFilterChains() {
			if seen[fc.GetName()] {
				t.Errorf("listener %s: duplicate filter chain name %q", l.GetName(), fc.GetName())
			}
			seen[fc.GetName()] = true
		}
		if l.GetName() == "virtualInbound" && len(l.GetFilterChains()) < 3 {
			t.Errorf("virtualInbound has %d chains; PERMISSIVE ports should have several variants", len(l.GetFilterChains()))
		}
	}
}

// TestExtAuthzTarget: with Ward's ext_authz server configured, Envoy
// proxies call it (fail closed) through a cluster they are given, while
// proxyless gRPC keeps native RBAC and gets no such cluster.
func TestExtAuthzTarget(t *testing.T) {
	snap := examples(t)
	target, err := ParseExtAuthzTarget("127.0.0.1:9191")
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{ExtAuthz: target})
	ix := translate.NewIndex(snap)
	for _, tc := range []struct {
		proxy       *mesh.Proxy
		wantExtAuth bool
	}{
		{&mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}, true},
		{&mesh.Proxy{ID: "gw.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"127.0.0.10"}}, true},
		{&mesh.Proxy{ID: "grpc~reviews", Type: mesh.ProxyGRPC, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}, false},
	} {
		res := translate.Generate(ix, ix.Scope(tc.proxy), h)
		if err := res.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.proxy.ID, err)
		}
		hasCluster := false
		for _, c := range res.Clusters {
			hasCluster = hasCluster || c.GetName() == target.ClusterName()
		}
		names := httpFilterNames(t, res.Listeners, "")
		hasFilter := indexOf(names, "ext_authz") >= 0
		if hasCluster != tc.wantExtAuth || hasFilter != tc.wantExtAuth {
			t.Errorf("%s: ext_authz cluster %v, filter %v (filters %v); want both %v", tc.proxy.ID, hasCluster, hasFilter, names, tc.wantExtAuth)
		}
	}
	for _, bad := range []string{"ward:9191", "127.0.0.1:0", "127.0.0.1"} {
		if _, err := ParseExtAuthzTarget(bad); err == nil {
			t.Errorf("ParseExtAuthzTarget(%q) accepted", bad)
		}
	}
}
