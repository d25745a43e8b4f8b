package hooks

import (
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// TestAppEnforcedAuthz: a proxyless gRPC workload that opted into
// enforcing through ext_authz (WARD_AUTHZ=ext-authz) gets no Ward
// authorization filters but keeps its mTLS chains; a normal proxyless
// workload, one with an unknown value and an Envoy sidecar claiming the
// flag all keep theirs; the flag is part of the fingerprint.
func TestAppEnforcedAuthz(t *testing.T) {
	snap := examples(t)
	h := New(Config{})
	ix := translate.NewIndex(snap)
	reviews := func(typ mesh.ProxyType, authz string) *mesh.Proxy {
		p := &mesh.Proxy{ID: string(typ) + "~reviews~" + authz, Type: typ, Namespace: "bookinfo", ServiceAccount: "reviews",
			Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}, Metadata: map[string]string{}}
		if authz != "" {
			p.Metadata[MetaAuthz] = authz
		}
		return p
	}
	for _, tc := range []struct {
		proxy     *mesh.Proxy
		wantAuthz bool
	}{
		{reviews(mesh.ProxyGRPC, ""), true},
		{reviews(mesh.ProxyGRPC, AuthzRBAC), true},
		{reviews(mesh.ProxyGRPC, AuthzExtAuthz), false},
		{reviews(mesh.ProxyGRPC, "opa"), true},
		{reviews(mesh.ProxySidecar, AuthzExtAuthz), true},
	} {
		res := translate.Generate(ix, ix.Scope(tc.proxy), h)
		if err := res.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.proxy.ID, err)
		}
		names := httpFilterNames(t, res.Listeners, "")
		if got := indexOf(names, "ward.authz") >= 0; got != tc.wantAuthz {
			t.Errorf("%s: Ward authorization filters present = %v, want %v (filters %v)", tc.proxy.ID, got, tc.wantAuthz, names)
		}
		if indexOf(names, "router") < 0 {
			t.Errorf("%s: no router filter (filters %v)", tc.proxy.ID, names)
		}
		tlsChains := 0
		for _, l := range res.Listeners {
			for _, fc := range l.GetFilterChains() {
				if fc.GetTransportSocket() != nil {
					tlsChains++
				}
			}
		}
		if tc.proxy.Type == mesh.ProxyGRPC && tlsChains == 0 {
			t.Errorf("%s: no mTLS inbound chain; bookinfo is STRICT", tc.proxy.ID)
		}
	}
	if h.Fingerprint(snap, reviews(mesh.ProxyGRPC, AuthzExtAuthz)) == h.Fingerprint(snap, reviews(mesh.ProxyGRPC, "")) {
		t.Error("opting into ext_authz enforcement does not change the fingerprint")
	}
	if h.Fingerprint(snap, reviews(mesh.ProxyGRPC, AuthzRBAC)) != h.Fingerprint(snap, reviews(mesh.ProxyGRPC, "")) {
		t.Error("WARD_AUTHZ=rbac and no WARD_AUTHZ fingerprint differently, yet generate the same")
	}
}
