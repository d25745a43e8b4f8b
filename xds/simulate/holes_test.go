package simulate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// The TestHoles* tests are the regression cases of issue #12's four
// fail-open holes, judged on the assembled sidecar output. They fail
// until the enforcement fixes land (the "enforce" branch); after that
// they must pass.

// workloadYAML declares workload web (10.0.0.2, ns foo, sa web) serving
// an HTTP port 8080 and a TCP port 5432, with STRICT mTLS.
const workloadYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: foo}
spec:
  hosts: ["web.foo.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 5432, name: tcp, protocol: TCP}
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
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  mtls: {mode: STRICT}
`

const issuerJWKS = `{"keys":[{"alg":"ES256","crv":"P-256","kid":"k1","kty":"EC","use":"sig","x":"b5qJEQ5OaDuhqWtqtYB9kZoGkejLMWGzez9y44_bZOc","y":"tKoPr4HYvhtvIojU-Bj7NrcZ_Req3Xdt3SuyK4qT6N4"}]}`

const requestAuthYAML = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector:
    matchLabels: {app: web}
  jwtRules:
  - issuer: "https://issuer.example.com"
    jwks: '` + issuerJWKS + `'
`

var web = &mesh.Proxy{ID: "web-1.foo", Type: mesh.ProxySidecar, Namespace: "foo", ServiceAccount: "web",
	Labels: mesh.Labels{"app": "web"}, IPs: []string{"10.0.0.2"}}

func snapshotOf(t testing.TB, docs ...string) *mesh.Snapshot {
	t.Helper()
	cfgs, mc, err := schema.DecodeAll([]byte(strings.Join(docs, "\n---\n")), mesh.Source{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	var m mesh.MeshConfig
	if mc != nil {
		m = *mc
	}
	return mesh.NewSnapshot(m, cfgs)
}

// mtlsTo is a request captured into web's sidecar from peer over mTLS.
func mtlsTo(port uint32, proto simulate.Protocol, peer string) simulate.Request {
	r := simulate.Request{Capture: simulate.Inbound, SrcIP: "10.0.0.9", SrcPort: 41000, DstIP: "10.0.0.2", DstPort: port,
		TLS: true, PeerURISAN: peer, Protocol: proto}
	switch proto {
	case simulate.TCP:
		r.ALPN = []string{"istio-peer-exchange", "istio"}
	case simulate.HTTP1:
		r.ALPN, r.Method, r.Path, r.Host = []string{"istio-http/1.1", "istio"}, "GET", "/", "web.foo.svc.cluster.local"
	default:
		r.ALPN, r.Method, r.Path, r.Host = []string{"istio-h2", "istio"}, "POST", "/", "web.foo.svc.cluster.local"
	}
	return r
}

func expectNotAllowed(t *testing.T, res *simulate.Result) {
	t.Helper()
	if res.Verdict == simulate.Allowed {
		t.Errorf("allowed: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
}

// expectDenied wants a filter's denial on an established connection (not
// a handshake failure or a missing chain, which would hide the hole).
func expectDenied(t *testing.T, res *simulate.Result) {
	t.Helper()
	if res.Verdict != simulate.Denied {
		t.Errorf("want a filter's denial: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
}

// TestHolesTCPPortRBAC: hole 1, TCP ports carry no network RBAC.
func TestHolesTCPPortRBAC(t *testing.T) {
	denyBob := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bob, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/bob"]}}]
`
	allowNothing := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
`
	bob := "spiffe://cluster.local/ns/foo/sa/bob"
	t.Run("DENY by principal", func(t *testing.T) {
		sim := wardSim(t, snapshotOf(t, workloadYAML, denyBob), web, hooks.Config{}, nil)
		if res := sim.Run(mtlsTo(8080, simulate.HTTP1, bob)); res.Verdict != simulate.Denied {
			t.Fatalf("the HTTP port does not deny bob either: %s", res)
		}
		expectDenied(t, sim.Run(mtlsTo(5432, simulate.TCP, bob)))
	})
	t.Run("ALLOW nothing", func(t *testing.T) {
		sim := wardSim(t, snapshotOf(t, workloadYAML, allowNothing), web, hooks.Config{}, nil)
		expectDenied(t, sim.Run(mtlsTo(5432, simulate.TCP, "spiffe://cluster.local/ns/foo/sa/alice")))
	})
}

// TestHolesPathNormalization: hole 2, no path normalisation in the
// sidecar's inbound HCM. Istio's default (BASE) normalises RFC 3986.
func TestHolesPathNormalization(t *testing.T) {
	denyAdmin := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
`
	sim := wardSim(t, snapshotOf(t, workloadYAML, denyAdmin), web, hooks.Config{}, nil)
	alice := "spiffe://cluster.local/ns/foo/sa/alice"
	for _, path := range []string{"/admin", "/public/../admin", "/%61dmin", "/a/%2e%2e/admin", "/admin/../admin/x", "admin"} {
		for _, proto := range []simulate.Protocol{simulate.HTTP1, simulate.HTTP2} {
			t.Run(string(proto)+path, func(t *testing.T) {
				r := mtlsTo(8080, proto, alice)
				r.Path = path
				expectNotAllowed(t, sim.Run(r))
			})
		}
	}
}

// TestHolesRequestPrincipalSlash: hole 3, a subject containing "/".
func TestHolesRequestPrincipalSlash(t *testing.T) {
	allow := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-sub, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example.com/team/alice"]}}]
`
	sim := wardSim(t, snapshotOf(t, workloadYAML, requestAuthYAML, allow), web, hooks.Config{}, nil)
	r := mtlsTo(8080, simulate.HTTP1, "spiffe://cluster.local/ns/foo/sa/client")
	r.JWT = simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://issuer.example.com", Claims: map[string]any{"sub": "team/alice"}}
	if res := sim.Run(r); res.Verdict != simulate.Allowed {
		t.Errorf("iss=https://issuer.example.com sub=team/alice not allowed: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	r.JWT.Claims = map[string]any{"sub": "alice"}
	expectNotAllowed(t, sim.Run(r))
}

// TestHolesIssuerPrefixWildcard: hole 4, "https://issuer.example.com*"
// makes the workload deny everything.
func TestHolesIssuerPrefixWildcard(t *testing.T) {
	allow := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-issuer, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example.com*"]}}]
`
	sim := wardSim(t, snapshotOf(t, workloadYAML, requestAuthYAML, allow), web, hooks.Config{}, nil)
	r := mtlsTo(8080, simulate.HTTP1, "spiffe://cluster.local/ns/foo/sa/client")
	r.JWT = simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://issuer.example.com", Claims: map[string]any{"sub": "alice"}}
	if res := sim.Run(r); res.Verdict != simulate.Allowed {
		t.Errorf("token from the wildcard issuer not allowed: %s\n%s", res, strings.Join(res.Trace, "\n"))
	}
	r.JWT = simulate.JWT{}
	expectNotAllowed(t, sim.Run(r))
}

// denyAll is an external authorizer that denies every check.
type denyAll struct{ calls int }

func (d *denyAll) Check(simulate.CheckRequest) (simulate.CheckResponse, error) {
	d.calls++
	return simulate.CheckResponse{Allowed: false, Status: 403}, nil
}

// TestHolesCustomProviderGate is a fifth hole the simulator found: the
// ext_authz filter of an external CUSTOM provider is gated on
// envoy.filters.http.rbac/shadow_effective_policy_id, but Envoy writes
// the shadow result under <shadow_rules_stat_prefix>shadow_effective_policy_id
// ("istio-ext-authz-<provider>-shadow_effective_policy_id"), so the
// provider is never consulted and its CUSTOM rules fail open.
func TestHolesCustomProviderGate(t *testing.T) {
	meshYAML := `
apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: external
    envoyExtAuthzGrpc: {service: ext-authz.auth.svc.cluster.local, port: 9000}
`
	custom := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  action: CUSTOM
  provider: {name: external}
  rules:
  - to: [{operation: {paths: ["/custom/*"]}}]
`
	cfg := hooks.Config{Authz: authz.HookConfig{ProviderCluster: func(mesh.ExtensionProvider) string { return "outbound|9000||ext-authz.auth.svc.cluster.local" }}}
	checker := &denyAll{}
	sim := wardSim(t, snapshotOf(t, meshYAML, workloadYAML, custom), web, cfg, checker)
	r := mtlsTo(8080, simulate.HTTP1, "spiffe://cluster.local/ns/foo/sa/alice")
	r.Path = "/custom/x"
	res := sim.Run(r)
	if checker.calls == 0 || res.Verdict != simulate.Denied {
		t.Errorf("CUSTOM provider not consulted (%d calls): %s\n%s", checker.calls, res, strings.Join(res.Trace, "\n"))
	}
	checker.calls = 0
	r.Path = "/public"
	if res := sim.Run(r); checker.calls != 0 || res.Verdict != simulate.Allowed {
		t.Errorf("provider consulted outside its rules (%d calls): %s", checker.calls, res)
	}
}
