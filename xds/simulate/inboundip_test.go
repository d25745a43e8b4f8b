package simulate_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// inlineYAML declares service web in foo whose only endpoint is inline
// at 1.1.1.1 (service account web, service port 80 → workload port 8080,
// TCP 9000): the proxy at that address serves it by IP, no selector
// involved (Istio's benchmark "pod 0" shape).
const inlineYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: foo}
spec:
  hosts: ["web.foo.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 9000, name: tcp, protocol: TCP}
  endpoints:
  - address: 1.1.1.1
    serviceAccount: web
    ports: {http: 8080}
    labels: {security.istio.io/tlsMode: istio}
`

var inlineWeb = &mesh.Proxy{ID: "web-0.foo", Type: mesh.ProxySidecar, Namespace: "foo", ServiceAccount: "web",
	Labels: mesh.Labels{"app": "web"}, IPs: []string{"1.1.1.1"}}

func toInline(port uint32, proto simulate.Protocol, peer string) simulate.Request {
	r := mtlsTo(port, proto, peer)
	r.DstIP = "1.1.1.1"
	return r
}

func plaintext(r simulate.Request) simulate.Request {
	r.TLS, r.PeerURISAN, r.ALPN = false, "", nil
	return r
}

// onChain wants the request to have reached port's own inbound chain
// (not the catch-all, whose policies would hide a missing port).
func onChain(t *testing.T, res *simulate.Result, port string) {
	t.Helper()
	if !strings.HasPrefix(res.Chain, "inbound|"+port+"||") {
		t.Errorf("chain %q, want inbound|%s||: %s\n%s", res.Chain, port, res, strings.Join(res.Trace, "\n"))
	}
}

// TestInboundByIPEnforced: the ports a proxy serves because an inline
// endpoint is at its IP get the same PeerAuthentication and
// AuthorizationPolicy enforcement as any other inbound port.
func TestInboundByIPEnforced(t *testing.T) {
	strict := `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  mtls: {mode: STRICT}
`
	policies := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bob, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/bob"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-alice-bob, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/alice", "cluster.local/ns/foo/sa/bob"]}}]
`
	alice, bob, carol := "spiffe://cluster.local/ns/foo/sa/alice", "spiffe://cluster.local/ns/foo/sa/bob", "spiffe://cluster.local/ns/foo/sa/carol"
	sim := wardSim(t, snapshotOf(t, inlineYAML, strict, policies), inlineWeb, hooks.Config{}, nil)

	for _, tc := range []struct {
		port  uint32
		proto simulate.Protocol
	}{{8080, simulate.HTTP1}, {9000, simulate.TCP}} {
		port := strconv.FormatUint(uint64(tc.port), 10)
		t.Run("allowed principal reaches inbound|"+port+"||", func(t *testing.T) {
			res := sim.Run(toInline(tc.port, tc.proto, alice))
			if res.Verdict != simulate.Allowed || res.Cluster != "inbound|"+port+"||" {
				t.Errorf("want allowed to inbound|%s||: %s\n%s", port, res, strings.Join(res.Trace, "\n"))
			}
			onChain(t, res, port)
		})
		t.Run("plaintext to STRICT port "+port, func(t *testing.T) {
			expectNotAllowed(t, sim.Run(plaintext(toInline(tc.port, tc.proto, ""))))
		})
		t.Run("denied principal on port "+port, func(t *testing.T) {
			res := sim.Run(toInline(tc.port, tc.proto, bob))
			expectDenied(t, res)
			onChain(t, res, port)
		})
		t.Run("principal not allowed on port "+port, func(t *testing.T) {
			res := sim.Run(toInline(tc.port, tc.proto, carol))
			expectDenied(t, res)
			onChain(t, res, port)
		})
	}
}

// TestInboundByIPPortLevelMTLS: a port-level PeerAuthentication names the
// workload port the endpoint's ports map gives (8080), and binds there.
func TestInboundByIPPortLevelMTLS(t *testing.T) {
	portLevel := `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    8080: {mode: STRICT}
`
	sim := wardSim(t, snapshotOf(t, inlineYAML, portLevel), inlineWeb, hooks.Config{}, nil)
	expectNotAllowed(t, sim.Run(plaintext(toInline(8080, simulate.HTTP1, ""))))
	res := sim.Run(plaintext(toInline(9000, simulate.TCP, "")))
	if res.Verdict != simulate.Allowed || res.Cluster != "inbound|9000||" {
		t.Errorf("PERMISSIVE port 9000: want plaintext allowed to inbound|9000||: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
}

// TestInboundByIPIdentity: a proxy at the endpoint's address under
// another identity does not get the endpoint's ports as its own.
func TestInboundByIPIdentity(t *testing.T) {
	mallory := *inlineWeb
	mallory.ServiceAccount = "mallory"
	sim := wardSim(t, snapshotOf(t, inlineYAML), &mallory, hooks.Config{}, nil)
	res := sim.Run(toInline(8080, simulate.HTTP1, "spiffe://cluster.local/ns/foo/sa/alice"))
	if res.Cluster == "inbound|8080||" || strings.HasPrefix(res.Chain, "inbound|8080||") {
		t.Errorf("mallory serves web's port 8080: %s", res)
	}
}
