package semantics

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// variant is how a case is sent: the port's declared protocol, what the
// client speaks, and whether it uses mTLS.
type variant struct {
	portProto string
	proto     simulate.Protocol
	mtls      bool
	// extAuthz: Envoy calls Ward's ext_authz server (run in-process)
	// instead of enforcing native RBAC.
	extAuthz bool
	// gateway: the workload is an ingress gateway whose Gateway server
	// listens on the case's port (ISTIO_MUTUAL for mTLS), not a sidecar.
	gateway bool
	// proxyless: the workload is a proxyless gRPC server (its server
	// listener, judged with Envoy's semantics), not a sidecar.
	proxyless bool
}

func (v variant) String() string {
	tls, mode := "plaintext", "rbac"
	if v.mtls {
		tls = "mtls"
	}
	if v.extAuthz {
		mode = "extauthz"
	}
	kind := "sidecar"
	switch {
	case v.gateway:
		kind = "gateway"
	case v.proxyless:
		kind = "proxyless"
	}
	return kind + "-" + strings.ToLower(v.portProto) + "-" + tls + "-" + mode
}

// variants are every port protocol × plaintext/mTLS × enforcement mode.
func variants() []variant {
	var out []variant
	for _, gw := range []bool{false, true} {
		for _, ea := range []bool{false, true} {
			for _, p := range []struct {
				port  string
				proto simulate.Protocol
			}{{"HTTP", simulate.HTTP1}, {"HTTP2", simulate.HTTP2}, {"GRPC", simulate.GRPC}, {"TCP", simulate.TCP}} {
				out = append(out, variant{p.port, p.proto, false, ea, gw, false}, variant{p.port, p.proto, true, ea, gw, false})
			}
		}
	}
	// Proxyless gRPC servers speak gRPC only and enforce native RBAC.
	return append(out, variant{"GRPC", simulate.GRPC, false, false, false, true}, variant{"GRPC", simulate.GRPC, true, false, false, true})
}

// neutralPeer is the identity an mTLS variant presents when the case
// names none.
const neutralPeer = "cluster.local/ns/sim/sa/client"

// workloadIP is the sidecar's workload address.
const workloadIP = "10.0.0.2"

// suite holds what one data file needs: its configs, its Rego engine and
// the simulators built so far.
type suite struct {
	name    string
	mesh    mesh.MeshConfig
	configs []*mesh.Config
	issuers []string
	engine  *authz.Engine
	sims    map[string]*world
	// srv is Ward's ext_authz server, holding the snapshot of the world
	// last simulated (current).
	srv     *extauthz.Server
	current string
}

// world is one synthesized registry and the sidecar simulator over it.
type world struct {
	snap *mesh.Snapshot
	sim  *simulate.Simulator
}

func newSuite(t testing.TB, name string, sf suiteFile) *suite {
	t.Helper()
	s := &suite{name: name, sims: map[string]*world{}, srv: extauthz.New(extauthz.Config{Timeout: time.Minute})}
	if sf.Mesh != "" {
		_, mc, err := schema.DecodeAll([]byte(sf.Mesh), mesh.Source{})
		if err != nil || mc == nil {
			t.Fatalf("%s mesh: %v", name, err)
		}
		s.mesh = *mc
	}
	cfgs, _, err := schema.DecodeAll([]byte(sf.Policies), mesh.Source{})
	if err != nil {
		t.Fatalf("%s policies: %v", name, err)
	}
	s.configs = cfgs
	s.engine, err = authz.NewEngine(mesh.NewSnapshot(s.mesh, cfgs), authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("%s engine: %v", name, err)
	}
	s.issuers = issuersOf(sf.Cases)
	return s
}

func issuersOf(cases []suiteCase) []string {
	seen := map[string]bool{}
	for _, c := range cases {
		if iss, ok := c.Req.Claims["iss"].(string); ok {
			seen[iss] = true
		}
	}
	out := make([]string, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	sort.Strings(out)
	return out
}

// world is the synthesized registry around the case's workload: a
// ServiceEntry declaring its port with the variant's protocol, a
// WorkloadEntry, PERMISSIVE mTLS (so plaintext and mTLS both reach a
// sidecar; STRICT or DISABLE for proxyless gRPC, which cannot tell them
// apart) and a RequestAuthentication trusting every issuer the file's
// cases use.
func (s *suite) world(ns string, labels map[string]string, port uint32, v variant) string {
	mode := "PERMISSIVE"
	if v.proxyless {
		mode = map[bool]string{true: "STRICT", false: "DISABLE"}[v.mtls]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sim-web, namespace: %s}
spec:
  hosts: ["sim-web.%s.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %d, name: p, protocol: %s}]
  workloadSelector: {labels: %s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: sim-web-1, namespace: %s}
spec:
  address: %s
  serviceAccount: web
  labels: %s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: sim-peer, namespace: %s}
spec: {mtls: {mode: %s}}
`, ns, ns, port, v.portProto, flowMap(labels), ns, workloadIP, flowMap(withTLSMode(labels)), ns, mode)
	b.WriteString(s.requestAuth(ns))
	return b.String()
}

// requestAuth trusts every issuer the file's cases use, namespace-wide.
func (s *suite) requestAuth(ns string) string {
	if len(s.issuers) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: sim-jwt, namespace: %s}\nspec:\n  jwtRules:\n", ns)
	for _, iss := range s.issuers {
		fmt.Fprintf(&b, "  - {issuer: %q, jwks: '%s'}\n", iss, jwks)
	}
	return b.String()
}

const jwks = `{"keys":[{"alg":"ES256","crv":"P-256","kid":"k1","kty":"EC","use":"sig","x":"b5qJEQ5OaDuhqWtqtYB9kZoGkejLMWGzez9y44_bZOc","y":"tKoPr4HYvhtvIojU-Bj7NrcZ_Req3Xdt3SuyK4qT6N4"}]}`

// gatewayWorld is an ingress gateway with the case's labels: a Gateway
// server on the case's port (the variant's protocol in plaintext;
// HTTPS or TLS with ISTIO_MUTUAL for mTLS) and a VirtualService sending
// everything to a backend service.
func (s *suite) gatewayWorld(ns string, labels map[string]string, port uint32, v variant) string {
	proto, tls := v.portProto, ""
	if v.mtls {
		proto, tls = "HTTPS", "\n    tls: {mode: ISTIO_MUTUAL}"
		if v.proto == simulate.TCP {
			proto = "TLS"
		}
	}
	route := "http: [{route: [{destination: {host: sim-backend." + ns + ".svc.cluster.local, port: {number: 80}}}]}]"
	if v.proto == simulate.TCP {
		route = "tcp: [{route: [{destination: {host: sim-backend." + ns + ".svc.cluster.local, port: {number: 80}}}]}]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: sim-gw, namespace: %s}
spec:
  selector: %s
  servers:
  - port: {number: %d, name: p, protocol: %s}
    hosts: ["*"]%s
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sim-backend, namespace: %s}
spec:
  hosts: ["sim-backend.%s.svc.cluster.local"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: p, protocol: %s}]
  endpoints: [{address: 10.0.0.50}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sim-gw, namespace: %s}
spec:
  hosts: ["*"]
  gateways: ["sim-gw"]
  %s
`, ns, flowMap(labels), port, proto, tls, ns, ns, backendProto(v), ns, route)
	b.WriteString(s.requestAuth(ns))
	return b.String()
}

func backendProto(v variant) string {
	if v.proto == simulate.TCP {
		return "TCP"
	}
	return v.portProto
}

func withTLSMode(l map[string]string) map[string]string {
	out := map[string]string{"security.istio.io/tlsMode": "istio"}
	for k, v := range l {
		out[k] = v
	}
	return out
}

func flowMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q: %q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// simulator returns (building once) the simulator for the sidecar of the
// case's workload with its port declared as portProto, and points the
// ext_authz server at that world.
func (s *suite) simulator(t *testing.T, ns string, labels map[string]string, port uint32, v variant) *simulate.Simulator {
	t.Helper()
	key := fmt.Sprintf("%s|%s|%d|%s|%v|%v|%v|%v", ns, flowMap(labels), port, v.portProto, v.extAuthz, v.gateway, v.proxyless, (v.gateway || v.proxyless) && v.mtls)
	w, ok := s.sims[key]
	if !ok {
		w = s.build(t, ns, labels, port, v)
		s.sims[key] = w
	}
	if v.extAuthz && s.current != key {
		if err := s.srv.Update(w.snap); err != nil {
			t.Fatalf("ext_authz update: %v", err)
		}
		s.current = key
	}
	return w.sim
}

func (s *suite) build(t *testing.T, ns string, labels map[string]string, port uint32, v variant) *world {
	t.Helper()
	src := s.world(ns, labels, port, v)
	if v.gateway {
		src = s.gatewayWorld(ns, labels, port, v)
	}
	extra, _, err := schema.DecodeAll([]byte(src), mesh.Source{})
	if err != nil {
		t.Fatalf("synthesized registry: %v", err)
	}
	snap := mesh.NewSnapshot(s.mesh, append(append([]*mesh.Config(nil), s.configs...), extra...))
	p := &mesh.Proxy{ID: "sim-web-1." + ns, Type: mesh.ProxySidecar, Namespace: ns, ServiceAccount: "web", Labels: labels, IPs: []string{workloadIP}}
	switch {
	case v.gateway:
		p.Type = mesh.ProxyRouter
	case v.proxyless:
		p.Type = mesh.ProxyGRPC
	}
	cfg := hooks.Config{}
	if v.extAuthz {
		target, err := hooks.ParseExtAuthzTarget("127.0.0.1:9191")
		if err != nil {
			t.Fatal(err)
		}
		cfg.ExtAuthz = target
	}
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), hooks.New(cfg))
	if err := res.Validate(); err != nil {
		t.Fatalf("sidecar resources do not validate: %v", err)
	}
	sim := simulate.New(simulate.Config{Resources: simulate.Resources{Listeners: res.Listeners, Routes: res.Routes, Clusters: res.Clusters},
		Checker: serverChecker(s.srv)})
	return &world{snap: snap, sim: sim}
}
