package simulate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// gwProxy is an ingress gateway in istio-system.
var gwProxy = &mesh.Proxy{ID: "ingress-1.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system",
	ServiceAccount: "ingress", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"10.0.9.1"}}

// gatewayBackends are two services: prod's app and team-b's secret
// database, whose owners never meant to expose it.
const gatewayBackends = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: prod}
spec:
  hosts: ["app.prod.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: team-b}
spec:
  hosts: ["db.team-b.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}, {number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.2.1}]
`

func gwHTTP(host string) simulate.Request {
	return simulate.Request{Capture: simulate.Direct, SrcIP: "203.0.113.7", SrcPort: 50000, DstIP: "10.0.9.1", DstPort: 80,
		Protocol: simulate.HTTP1, Method: "GET", Path: "/", Host: host}
}

func gwTLS(sni string) simulate.Request {
	return simulate.Request{Capture: simulate.Direct, SrcIP: "203.0.113.7", SrcPort: 50000, DstIP: "10.0.9.1", DstPort: 443,
		TLS: true, SNI: sni, ALPN: []string{"h2"}, Protocol: simulate.TCP}
}

func expectNoBackend(t *testing.T, res *simulate.Result, forbidden string) {
	t.Helper()
	if res.Verdict == simulate.Allowed && strings.Contains(res.Cluster, forbidden) {
		t.Errorf("reached %s: %s\n%s", forbidden, res, strings.Join(res.Trace, "\n"))
	}
}

// TestHoleGatewayServerHostNamespace: a Gateway server host
// "prod/app.example.com" admits only VirtualServices of namespace prod
// (Istio's namespace/host form); a VirtualService in team-b bound to the
// same gateway must not take the host over.
func TestHoleGatewayServerHostNamespace(t *testing.T) {
	gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["prod/app.example.com", "./status.example.com"]
`
	hijack := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hijack, namespace: team-b, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  hosts: ["app.example.com", "status.example.com"]
  gateways: ["istio-system/public"]
  http: [{route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]}]
`
	legit := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: prod, creationTimestamp: "2021-01-01T00:00:00Z"}
spec:
  hosts: ["app.example.com"]
  gateways: ["istio-system/public"]
  http: [{route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8080}}}]}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw, hijack, legit), gwProxy, hooks.Config{}, nil)
	res := sim.Run(gwHTTP("app.example.com"))
	expectNoBackend(t, res, "db.team-b")
	if res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "app.prod") {
		t.Errorf("prod's own VirtualService not served: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	expectNoBackend(t, sim.Run(gwHTTP("status.example.com")), "db.team-b")
}

// TestHoleGatewayVirtualServiceExportTo: a VirtualService exported only
// to its own namespace is not visible to a gateway proxy in another
// namespace (Istio picks a gateway's VirtualServices by exportTo too).
func TestHoleGatewayVirtualServiceExportTo(t *testing.T) {
	gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/*.example.com"]
`
	private := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team-b}
spec:
  hosts: ["db.example.com"]
  gateways: ["istio-system/public"]
  exportTo: ["."]
  http: [{route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw, private), gwProxy, hooks.Config{}, nil)
	expectNoBackend(t, sim.Run(gwHTTP("db.example.com")), "db.team-b")
}

// TestHoleGatewayPassthroughSNI: a PASSTHROUGH server for
// "prod/app.example.com" must route only SNIs it exposes, and only from
// VirtualServices its namespace qualifier admits: a bound
// VirtualService's tls route for another SNI (or from another namespace)
// must not open the gateway to a backend.
func TestHoleGatewayPassthroughSNI(t *testing.T) {
	gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: passthrough, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["prod/app.example.com"]
    tls: {mode: PASSTHROUGH}
`
	prodVS := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: prod}
spec:
  hosts: ["app.example.com", "db.internal.example.com"]
  gateways: ["istio-system/passthrough"]
  tls:
  - match: [{sniHosts: ["app.example.com"]}]
    route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8443}}}]
  - match: [{sniHosts: ["db.internal.example.com"]}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8443}}}]
`
	otherNS := `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sneaky, namespace: team-b}
spec:
  hosts: ["other.example.com"]
  gateways: ["istio-system/passthrough"]
  tls:
  - match: [{sniHosts: ["other.example.com"]}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8443}}}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw, prodVS, otherNS), gwProxy, hooks.Config{}, nil)
	if res := sim.Run(gwTLS("app.example.com")); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "app.prod") {
		t.Errorf("exposed SNI not routed: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	expectNoBackend(t, sim.Run(gwTLS("db.internal.example.com")), "db.team-b")
	expectNoBackend(t, sim.Run(gwTLS("other.example.com")), "db.team-b")
}

// TestGatewayDomainFronting: on one HTTPS port, a SIMPLE server for
// www.example.com and a MUTUAL server for pay.example.com. A client
// without a certificate handshakes as www and asks for Host
// pay.example.com: each server's chain routes only its own hosts, so it
// never reaches pay's backend; pay's own SNI needs a client certificate.
func TestGatewayDomainFronting(t *testing.T) {
	gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-www, protocol: HTTPS}
    hosts: ["*/www.example.com"]
    tls: {mode: SIMPLE, credentialName: www-cert}
  - port: {number: 443, name: https-pay, protocol: HTTPS}
    hosts: ["*/pay.example.com"]
    tls: {mode: MUTUAL, credentialName: pay-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes, namespace: prod}
spec:
  hosts: ["www.example.com", "pay.example.com"]
  gateways: ["istio-system/public"]
  http:
  - match: [{authority: {exact: pay.example.com}}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]
  - route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8080}}}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw), gwProxy, hooks.Config{}, nil)
	req := func(sni, host string) simulate.Request {
		r := gwTLS(sni)
		r.Protocol, r.Method, r.Path, r.Host = simulate.HTTP2, "GET", "/", host
		return r
	}
	if res := sim.Run(req("www.example.com", "www.example.com")); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "app.prod") {
		t.Errorf("www not served: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	expectNoBackend(t, sim.Run(req("www.example.com", "pay.example.com")), "db.team-b")
	expectNoBackend(t, sim.Run(req("www.example.com", "pay.example.com:443")), "db.team-b")
	expectNoBackend(t, sim.Run(req("pay.example.com", "pay.example.com")), "db.team-b")
	withCert := req("pay.example.com", "pay.example.com")
	withCert.PeerSubject = "CN=partner"
	if res := sim.Run(withCert); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "db.team-b") {
		t.Errorf("pay with a client certificate not served: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
}

// TestHoleGatewayWildcardServerFronting: a SIMPLE server for "*" (or
// *.example.com) and a MUTUAL server for pay.example.com share port 443.
// A client without a certificate handshakes with any other SNI (or
// none), landing on the wildcard server's chain, and sends Host
// pay.example.com: that chain's route config admitted every bound host,
// pay's included, so the client-certificate requirement was bypassed.
// The chain Envoy picks by SNI must be the only one that serves a host:
// others answer 421 Misdirected Request.
func TestHoleGatewayWildcardServerFronting(t *testing.T) {
	for _, anyHost := range []string{"*/*", "*/*.example.com"} {
		gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-any, protocol: HTTPS}
    hosts: ["` + anyHost + `"]
    tls: {mode: SIMPLE, credentialName: any-cert}
  - port: {number: 443, name: https-pay, protocol: HTTPS}
    hosts: ["*/pay.example.com"]
    tls: {mode: MUTUAL, credentialName: pay-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes, namespace: prod}
spec:
  hosts: ["www.example.com", "pay.example.com", "*.shop.example.com"]
  gateways: ["istio-system/public"]
  http:
  - match: [{authority: {exact: pay.example.com}}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]
  - route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8080}}}]
`
		t.Run(anyHost, func(t *testing.T) {
			sim := wardSim(t, snapshotOf(t, gatewayBackends, gw), gwProxy, hooks.Config{}, nil)
			req := func(sni, host string) simulate.Request {
				r := gwTLS(sni)
				r.Protocol, r.Method, r.Path, r.Host = simulate.HTTP2, "GET", "/", host
				return r
			}
			for _, sni := range []string{"www.example.com", "x.shop.example.com"} {
				for _, host := range []string{"pay.example.com", "pay.example.com:443", "PAY.example.com"} {
					expectNoBackend(t, sim.Run(req(sni, host)), "db.team-b")
				}
				if res := sim.Run(req(sni, sni)); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "app.prod") {
					t.Errorf("SNI %s, same Host not served: %s\n%s", sni, res, strings.Join(res.Trace, "\n"))
				}
			}
			if anyHost == "*/*" {
				expectNoBackend(t, sim.Run(req("", "pay.example.com")), "db.team-b")
			}
			withCert := req("pay.example.com", "pay.example.com")
			withCert.PeerSubject = "CN=partner"
			if res := sim.Run(withCert); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "db.team-b") {
				t.Errorf("pay with a client certificate not served: %s\n%s", res, strings.Join(res.Trace, "\n"))
			}
		})
	}
}

// TestHoleGatewayHTTPSRedirectOrder: two plain-HTTP servers on port 80,
// one for "*" and one for secure.example.com with httpsRedirect. Istio
// redirects a host when any server on the port that covers it asks for
// it; Ward let the first server listed decide, so with "*" first
// secure.example.com was served in plaintext.
func TestHoleGatewayHTTPSRedirectOrder(t *testing.T) {
	gw := `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http-any, protocol: HTTP}
    hosts: ["*/*"]
  - port: {number: 80, name: http-secure, protocol: HTTP}
    hosts: ["*/secure.example.com", "*/login.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes, namespace: prod}
spec:
  hosts: ["www.example.com", "secure.example.com"]
  gateways: ["istio-system/public"]
  http: [{route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8080}}}]}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw), gwProxy, hooks.Config{}, nil)
	for _, host := range []string{"secure.example.com", "login.example.com"} {
		if res := sim.Run(gwHTTP(host)); res.Verdict != simulate.Redirected {
			t.Errorf("%s over plaintext: %s\n%s", host, res, strings.Join(res.Trace, "\n"))
		}
	}
	if res := sim.Run(gwHTTP("www.example.com")); res.Verdict != simulate.Allowed {
		t.Errorf("www.example.com: %s", res)
	}
}

// TestHoleDelegateEscapesRoot: prod's root VirtualService hands
// /team-a/ to team-a's delegate. The delegate's own uri replaced the
// root's instead of having to refine it, so team-a's "/admin" route took
// /admin on prod's host; and a delegate exported only to its own
// namespace was used anyway. Istio drops a delegate route whose match
// conflicts with the root's, and a delegate not exported to the root's
// namespace.
func TestHoleDelegateEscapesRoot(t *testing.T) {
	gw := `
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
metadata: {name: root, namespace: prod}
spec:
  hosts: ["app.example.com"]
  gateways: ["istio-system/public"]
  http:
  - match: [{uri: {prefix: /team-a/}}]
    delegate: {name: team-a, namespace: team-b}
  - match: [{uri: {prefix: /team-private/}}]
    delegate: {name: private, namespace: team-b}
  - route: [{destination: {host: app.prod.svc.cluster.local, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: team-a, namespace: team-b}
spec:
  http:
  - match: [{uri: {prefix: /admin}}, {uri: {exact: /team-a/ok}}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]
  - match: [{uri: {prefix: /team-a/x}}]
    route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team-b}
spec:
  exportTo: ["."]
  http:
  - route: [{destination: {host: db.team-b.svc.cluster.local, port: {number: 8080}}}]
`
	sim := wardSim(t, snapshotOf(t, gatewayBackends, gw), gwProxy, hooks.Config{}, nil)
	get := func(path string) *simulate.Result {
		r := gwHTTP("app.example.com")
		r.Path = path
		return sim.Run(r)
	}
	for _, path := range []string{"/admin", "/admin/users", "/team-private/x"} {
		res := get(path)
		expectNoBackend(t, res, "db.team-b")
	}
	if res := get("/team-a/x1"); res.Verdict != simulate.Allowed || !strings.Contains(res.Cluster, "db.team-b") {
		t.Errorf("a delegate route refining the root's match is not served: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
}
