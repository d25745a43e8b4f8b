package simulate_test

import (
	"maps"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// forgeableRA asks jwt_authn to write the payload and a claim into
// request headers the application will trust.
const forgeableRA = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: forward, namespace: istio-system}
spec:
  jwtRules:
  - issuer: "https://issuer.example.com"
    jwks: '` + issuerJWKS + `'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
`

// hcms returns every HTTP connection manager in a proxy's listeners
// (filter chains, default chains and API listeners).
func hcms(t *testing.T, ls []*listener.Listener) []*hcm.HttpConnectionManager {
	t.Helper()
	var out []*hcm.HttpConnectionManager
	for _, l := range ls {
		if a := l.GetApiListener().GetApiListener(); a != nil {
			h := &hcm.HttpConnectionManager{}
			if err := a.UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			out = append(out, h)
		}
		for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				if f.GetName() != translate.FilterHCM {
					continue
				}
				h := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				out = append(out, h)
			}
		}
	}
	return out
}

// TestHeaderTrust inspects every HTTP connection manager a sidecar and a
// gateway receive for the headers a client could forge:
//   - x-forwarded-client-cert is sanitised (never forwarded as sent: a
//     client could otherwise claim any peer identity to the app);
//   - a gateway takes the client address from the connection
//     (use_remote_address, no trusted X-Forwarded-For hops), so
//     remoteIpBlocks and access logs cannot be steered by the header;
//   - jwt_authn output headers (outputPayloadToHeader,
//     outputClaimToHeaders) sit on providers a catch-all rule runs for
//     every request, so Envoy strips a client's copy before verifying
//     (it sanitises only inside a verifier: a request no rule matched
//     would carry the forged header to the app).
func TestHeaderTrust(t *testing.T) {
	snap := snapshotOf(t, workloadYAML, forgeableRA, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*/*"]
    tls: {mode: SIMPLE, credentialName: cert}
`)
	for _, p := range []*mesh.Proxy{web, gwProxy} {
		ix := translate.NewIndex(snap)
		res := translate.Generate(ix, ix.Scope(p), hooks.New(hooks.Config{}))
		hs := hcms(t, res.Listeners)
		if len(hs) == 0 {
			t.Fatalf("%s: no HTTP connection manager", p.ID)
		}
		jwtSeen := false
		for _, h := range hs {
			switch h.GetForwardClientCertDetails() {
			case hcm.HttpConnectionManager_SANITIZE, hcm.HttpConnectionManager_SANITIZE_SET:
			default:
				t.Errorf("%s %s: forward_client_cert_details %s passes a client's x-forwarded-client-cert", p.ID, h.GetStatPrefix(), h.GetForwardClientCertDetails())
			}
			if p.Type == mesh.ProxyRouter && (!h.GetUseRemoteAddress().GetValue() || h.GetXffNumTrustedHops() != 0) {
				t.Errorf("%s %s: use_remote_address=%v xff_num_trusted_hops=%d: the client address comes from a header", p.ID, h.GetStatPrefix(),
					h.GetUseRemoteAddress().GetValue(), h.GetXffNumTrustedHops())
			}
			for _, f := range h.GetHttpFilters() {
				if f.GetName() != "envoy.filters.http.jwt_authn" {
					continue
				}
				jwtSeen = true
				cfg := &jwtv3.JwtAuthentication{}
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				checkJWTSanitised(t, p.ID, cfg)
			}
		}
		if !jwtSeen {
			t.Errorf("%s: the RequestAuthentication produced no jwt_authn filter", p.ID)
		}
	}
}

// checkJWTSanitised: a provider that writes request headers must be
// required by a rule matching every path (Envoy removes the provider's
// output headers when its verifier runs, whether or not a token came).
func checkJWTSanitised(t *testing.T, id string, cfg *jwtv3.JwtAuthentication) {
	t.Helper()
	catchAll := false
	for _, r := range cfg.GetRules() {
		if r.GetMatch().GetPrefix() == "/" && len(r.GetMatch().GetHeaders()) == 0 && r.GetRequires() != nil {
			catchAll = true
		}
	}
	for name, p := range cfg.GetProviders() {
		if (p.GetForwardPayloadHeader() != "" || len(p.GetClaimToHeaders()) > 0) && !catchAll {
			t.Errorf("%s: provider %s writes headers but no catch-all rule runs it", id, name)
		}
	}
	if cfg.GetRequirementMap() != nil && len(cfg.GetRules()) == 0 {
		t.Errorf("%s: per-route requirements only: routes without one keep a forged header", id)
	}
}

// TestHoleJWTHeaderPreflight: jwt_authn strips a client's copy of the
// headers a RequestAuthentication writes (outputPayloadToHeader,
// outputClaimToHeaders) only when it verifies; a CORS preflight
// (OPTIONS with Origin and Access-Control-Request-Method) is bypassed
// before that, so a forged "x-jwt-sub: admin" reached the application on
// a request with no token at all. Sidecar and gateway alike.
func TestHoleJWTHeaderPreflight(t *testing.T) {
	snap := snapshotOf(t, workloadYAML, forgeableRA, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: foo}
spec:
  hosts: ["web.example.com"]
  gateways: ["istio-system/public"]
  http: [{route: [{destination: {host: web.foo.svc.cluster.local, port: {number: 8080}}}]}]
`)
	forged := map[string]string{"x-jwt-sub": "admin", "x-jwt-payload": "eyJzdWIiOiJhZG1pbiJ9"}
	sidecar := mtlsTo(8080, simulate.HTTP1, "spiffe://cluster.local/ns/bar/sa/client")
	gateway := gwHTTP("web.example.com")
	for name, c := range map[string]struct {
		p   *mesh.Proxy
		req simulate.Request
	}{"sidecar": {web, sidecar}, "gateway": {gwProxy, gateway}} {
		t.Run(name, func(t *testing.T) {
			sim := wardSim(t, snap, c.p, hooks.Config{}, nil)
			for _, preflight := range []bool{false, true} {
				r := c.req
				r.Headers = maps.Clone(forged)
				if preflight {
					r.Method = "OPTIONS"
					r.Headers["origin"], r.Headers["access-control-request-method"] = "https://evil.example", "POST"
				}
				res := sim.Run(r)
				if res.Verdict != simulate.Allowed {
					t.Fatalf("preflight=%v: %s\n%s", preflight, res, strings.Join(res.Trace, "\n"))
				}
				for h := range forged {
					if v, ok := res.UpstreamHeaders[h]; ok {
						t.Errorf("preflight=%v: forged %s: %q reached the application\n%s", preflight, h, v, strings.Join(res.Trace, "\n"))
					}
				}
			}
			r := c.req
			r.Headers = maps.Clone(forged)
			r.JWT = simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://issuer.example.com", Claims: map[string]any{"sub": "alice"}}
			if res := sim.Run(r); res.UpstreamHeaders["x-jwt-sub"] != "alice" {
				t.Errorf("verified token: x-jwt-sub=%q, want alice\n%s", res.UpstreamHeaders["x-jwt-sub"], strings.Join(res.Trace, "\n"))
			}
		})
	}
}
