package simulate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// matrixWorkload is web (10.0.0.2, ns foo, sa web) declaring a port of
// every protocol Istio distinguishes; 7777 is declared by nobody.
const matrixWorkload = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: foo}
spec:
  hosts: ["web.foo.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 8081, name: http2, protocol: HTTP2}
  - {number: 8082, name: grpc, protocol: GRPC}
  - {number: 5432, name: tcp, protocol: TCP}
  - {number: 8443, name: tls, protocol: TLS}
  - {number: 9000, name: other}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: foo}
spec:
  address: 10.0.0.2
  serviceAccount: web
  labels: {app: web, security.istio.io/tlsMode: istio}
`

// matrixPorts are the ports probed, with the protocol a client speaks.
var matrixPorts = []struct {
	port  uint32
	proto simulate.Protocol
}{
	{8080, simulate.HTTP1}, {8081, simulate.HTTP2}, {8082, simulate.GRPC},
	{5432, simulate.TCP}, {8443, simulate.TCP}, {9000, simulate.HTTP1}, {7777, simulate.TCP},
}

func peerAuth(ns, name, selector, mode, portLevel string) string {
	s := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n"
	if selector != "" {
		s += "  selector: {matchLabels: {app: " + selector + "}}\n"
	}
	if mode != "" {
		s += "  mtls: {mode: " + mode + "}\n"
	}
	if portLevel != "" {
		s += "  portLevelMtls:\n" + portLevel
	}
	return s
}

// TestMTLSMatrix: plaintext to every port of a sidecar under every
// shape of PeerAuthentication is refused exactly where Istio refuses it
// (strict lists the ports whose resolved mode is STRICT), and mTLS from
// a mesh identity is accepted everywhere.
func TestMTLSMatrix(t *testing.T) {
	all := []uint32{8080, 8081, 8082, 5432, 8443, 9000, 7777}
	cases := []struct {
		name   string
		docs   []string
		strict []uint32
	}{
		{"no policy (PERMISSIVE)", nil, nil},
		{"mesh STRICT", []string{peerAuth("istio-system", "default", "", "STRICT", "")}, all},
		{"mesh STRICT, namespace PERMISSIVE", []string{peerAuth("istio-system", "default", "", "STRICT", ""), peerAuth("foo", "default", "", "PERMISSIVE", "")}, nil},
		{"mesh STRICT, namespace DISABLE", []string{peerAuth("istio-system", "default", "", "STRICT", ""), peerAuth("foo", "default", "", "DISABLE", "")}, nil},
		{"mesh STRICT, namespace UNSET", []string{peerAuth("istio-system", "default", "", "STRICT", ""), peerAuth("foo", "default", "", "UNSET", "")}, all},
		{"mesh PERMISSIVE, namespace STRICT", []string{peerAuth("istio-system", "default", "", "PERMISSIVE", ""), peerAuth("foo", "default", "", "STRICT", "")}, all},
		{"namespace STRICT, workload PERMISSIVE", []string{peerAuth("foo", "default", "", "STRICT", ""), peerAuth("foo", "web", "web", "PERMISSIVE", "")}, nil},
		{"namespace PERMISSIVE, workload STRICT", []string{peerAuth("foo", "default", "", "PERMISSIVE", ""), peerAuth("foo", "web", "web", "STRICT", "")}, all},
		{"namespace STRICT, workload UNSET", []string{peerAuth("foo", "default", "", "STRICT", ""), peerAuth("foo", "web", "web", "", "")}, all},
		{"namespace STRICT, other workload PERMISSIVE", []string{peerAuth("foo", "default", "", "STRICT", ""), peerAuth("foo", "other", "other", "PERMISSIVE", "")}, all},
		{"root-namespace selector does not reach foo", []string{peerAuth("istio-system", "web", "web", "STRICT", "")}, nil},
		{"other namespace STRICT", []string{peerAuth("bar", "default", "", "STRICT", "")}, nil},
		{"workload STRICT, ports PERMISSIVE and DISABLE", []string{peerAuth("foo", "web", "web", "STRICT",
			"    8080: {mode: PERMISSIVE}\n    5432: {mode: DISABLE}\n    7777: {mode: PERMISSIVE}\n")},
			[]uint32{8081, 8082, 8443, 9000}},
		{"workload PERMISSIVE, ports STRICT", []string{peerAuth("foo", "web", "web", "PERMISSIVE",
			"    8080: {mode: STRICT}\n    8082: {mode: STRICT}\n    5432: {mode: STRICT}\n    9000: {mode: STRICT}\n")},
			[]uint32{8080, 8082, 5432, 9000}},
		{"workload UNSET under namespace STRICT, port PERMISSIVE", []string{peerAuth("foo", "default", "", "STRICT", ""), peerAuth("foo", "web", "web", "",
			"    8443: {mode: PERMISSIVE}\n")},
			[]uint32{8080, 8081, 8082, 5432, 9000, 7777}},
		{"two workload policies: the oldest (STRICT) wins", []string{
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: z-strict, namespace: foo, creationTimestamp: \"2020-01-01T00:00:00Z\"}\nspec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n",
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a-disable, namespace: foo, creationTimestamp: \"2021-01-01T00:00:00Z\"}\nspec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: DISABLE}\n"}, all},
		{"two namespace policies: the oldest (STRICT) wins", []string{
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: z-strict, namespace: foo, creationTimestamp: \"2020-01-01T00:00:00Z\"}\nspec:\n  mtls: {mode: STRICT}\n",
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a-permissive, namespace: foo, creationTimestamp: \"2021-01-01T00:00:00Z\"}\nspec:\n  mtls: {mode: PERMISSIVE}\n"}, all},
		{"namespace-wide portLevelMtls is ignored", []string{peerAuth("foo", "default", "", "STRICT", "    8080: {mode: DISABLE}\n")}, all},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := wardSim(t, snapshotOf(t, append([]string{matrixWorkload}, c.docs...)...), web, hooks.Config{}, nil)
			for _, p := range matrixPorts {
				plain := mtlsTo(p.port, p.proto, "")
				plain.TLS, plain.ALPN = false, nil
				res := sim.Run(plain)
				if want := contains(c.strict, p.port); want == (res.Verdict == simulate.Allowed) {
					t.Errorf("plaintext to %d (%s), STRICT=%v: %s\n%s", p.port, p.proto, want, res, strings.Join(res.Trace, "\n"))
				}
				if res := sim.Run(mtlsTo(p.port, p.proto, "spiffe://cluster.local/ns/bar/sa/client")); res.Verdict != simulate.Allowed {
					t.Errorf("mTLS to %d (%s): %s\n%s", p.port, p.proto, res, strings.Join(res.Trace, "\n"))
				}
			}
		})
	}
}

// TestMTLSStrictPeerCertificate: on a STRICT port a TLS client without a
// certificate, or with one from a foreign trust domain, never reaches
// the application.
func TestMTLSStrictPeerCertificate(t *testing.T) {
	sim := wardSim(t, snapshotOf(t, matrixWorkload, peerAuth("foo", "default", "", "STRICT", "")), web, hooks.Config{}, nil)
	for _, p := range matrixPorts {
		for _, peer := range []string{"", "spiffe://evil.example.com/ns/foo/sa/web"} {
			t.Run(fmt.Sprintf("%d-%s", p.port, peer), func(t *testing.T) {
				expectNotAllowed(t, sim.Run(mtlsTo(p.port, p.proto, peer)))
			})
		}
	}
}

func contains(ports []uint32, p uint32) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// TestMTLSProxylessServer: a proxyless gRPC server's listener refuses
// plaintext and certificate-less TLS unless the port's mode is DISABLE
// (PERMISSIVE is enforced as STRICT: grpc-go cannot tell the two apart
// on one port, authn.GRPCInboundChain).
func TestMTLSProxylessServer(t *testing.T) {
	grpcWeb := *web
	grpcWeb.ID, grpcWeb.Type = "grpc~10.0.0.2~web-1.foo~foo.svc.cluster.local", mesh.ProxyGRPC
	cases := []struct {
		name  string
		docs  []string
		plain bool // plaintext accepted
	}{
		{"no policy", nil, false},
		{"namespace STRICT", []string{peerAuth("foo", "default", "", "STRICT", "")}, false},
		{"namespace DISABLE", []string{peerAuth("foo", "default", "", "DISABLE", "")}, true},
		{"namespace DISABLE, workload STRICT", []string{peerAuth("foo", "default", "", "DISABLE", ""), peerAuth("foo", "web", "web", "STRICT", "")}, false},
		{"workload STRICT, port DISABLE", []string{peerAuth("foo", "web", "web", "STRICT", "    8082: {mode: DISABLE}\n")}, true},
		{"workload DISABLE, port STRICT", []string{peerAuth("foo", "web", "web", "DISABLE", "    8082: {mode: STRICT}\n")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := wardSim(t, snapshotOf(t, append([]string{matrixWorkload}, c.docs...)...), &grpcWeb, hooks.Config{}, nil)
			r := mtlsTo(8082, simulate.GRPC, "")
			r.Capture, r.TLS, r.ALPN = simulate.Direct, false, nil
			if res := sim.Run(r); (res.Verdict == simulate.Allowed) != c.plain {
				t.Errorf("plaintext: want accepted=%v, got %s\n%s", c.plain, res, strings.Join(res.Trace, "\n"))
			}
			if c.plain {
				return
			}
			r.TLS = true
			expectNotAllowed(t, sim.Run(r))
			r.PeerURISAN = "spiffe://cluster.local/ns/bar/sa/client"
			if res := sim.Run(r); res.Verdict != simulate.Allowed {
				t.Errorf("mTLS: %s\n%s", res, strings.Join(res.Trace, "\n"))
			}
		})
	}
}

// TestHoleSidecarIngressPort: a Sidecar ingress listener on port 9080
// forwarding to 127.0.0.1:8080. Ward matched its chain on 8080 (the
// defaultEndpoint's port), so traffic to 9080 — the port clients use —
// fell to the catch-all: a portLevelMtls STRICT for 9080 admitted
// plaintext, and HTTP policies ran as TCP. Istio's chain is the ingress
// port's, forwarding to the defaultEndpoint.
func TestHoleSidecarIngressPort(t *testing.T) {
	sc := `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: foo}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
`
	denyAdmin := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
`
	pa := peerAuth("foo", "web", "web", "PERMISSIVE", "    9080: {mode: STRICT}\n")
	sim := wardSim(t, snapshotOf(t, matrixWorkload, sc, pa), web, hooks.Config{}, nil)
	plain := mtlsTo(9080, simulate.HTTP1, "")
	plain.TLS, plain.ALPN = false, nil
	expectNotAllowed(t, sim.Run(plain))

	sim = wardSim(t, snapshotOf(t, matrixWorkload, sc, pa, denyAdmin), web, hooks.Config{}, nil)
	r := mtlsTo(9080, simulate.HTTP1, "spiffe://cluster.local/ns/bar/sa/client")
	res := sim.Run(r)
	if res.Verdict != simulate.Allowed || res.Cluster != "inbound|9080||" {
		t.Errorf("mTLS to the ingress port: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	r.Path = "/admin"
	expectDenied(t, sim.Run(r))
}
