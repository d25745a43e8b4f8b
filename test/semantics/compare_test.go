package semantics

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/simulate"
)

// sent is one case as sent in one variant: the simulated request and the
// equivalent request for the Rego engine.
type sent struct {
	sim  simulate.Request
	rego *authz.Request
}

// skipReason says why a case cannot be sent in a variant ("" = it can).
func skipReason(c suiteCase, v variant) string {
	switch {
	case c.Req.TCP && v.proto != simulate.TCP:
		return "TCP-only case"
	case c.Req.SNI != "" && !v.mtls:
		return "SNI needs TLS"
	case c.Req.Principal != "" && !v.mtls:
		return "a peer principal needs mTLS"
	case c.Req.Claims != nil && c.Req.Claims["iss"] == nil && v.proto != simulate.TCP:
		return "a verified JWT needs an issuer"
	case c.Req.RemoteIP != "" && v.gateway:
		return "remote IP needs trusted XFF hops at a gateway"
	case c.Req.RemoteIP != "" && v.proxyless:
		return "proxyless gRPC has no X-Forwarded-For processing"
	case v.proxyless && c.Req.DstIP != "" && c.Req.DstIP != workloadIP:
		return "proxyless gRPC listens on the workload's own address"
	case c.Req.Claims != nil && v.proxyless:
		return "proxyless gRPC: JWTs are verified by the application's interceptor, not by xDS filters"
	case v.proxyless && !canonical(c.Req.Path):
		return "proxyless gRPC: a path is a method name, not normalised (a non-canonical one names no method)"
	case c.NoRBAC && !v.extAuthz:
		return "CUSTOM rego provider: not expressible in native RBAC (fails closed there)"
	}
	return ""
}

// canonical reports whether every normalisation level leaves the path
// alone (no escape, backslash, dot segment or repeated slash).
func canonical(p string) bool {
	p = or(p, "/")
	n, action := simulate.NormalizePath(p, "GET", simulate.PathOptions{Normalize: true, MergeSlashes: true})
	return action == simulate.PathForward && n == p && !strings.ContainsAny(p, "%\\")
}

func peerOf(c suiteCase, v variant) string {
	if !v.mtls {
		return ""
	}
	return or(c.Req.Principal, neutralPeer)
}

func send(c suiteCase, v variant) sent {
	r := c.Req
	peer := peerOf(c, v)
	capture := simulate.Inbound
	if v.gateway || v.proxyless {
		capture = simulate.Direct
	}
	s := simulate.Request{Capture: capture, SrcIP: or(r.IP, "10.0.0.1"), SrcPort: 40000, DstIP: or(r.DstIP, workloadIP),
		DstPort: portOf(c), TLS: v.mtls, SNI: r.SNI, PeerURISAN: spiffe(peer), Protocol: v.proto}
	rego := &authz.Request{Source: authz.Peer{IP: s.SrcIP, Port: 40000, Principal: peer}, Destination: authz.Peer{IP: s.DstIP, Port: s.DstPort}, SNI: r.SNI}
	s.ALPN = alpnFor(v)
	if v.proto == simulate.TCP {
		return sent{sim: s, rego: rego}
	}
	headers := map[string]string{}
	for k, val := range r.Headers {
		headers[strings.ToLower(k)] = val
	}
	if r.RemoteIP != "" {
		headers["x-forwarded-for"] = r.RemoteIP
		rego.RemoteIP = r.RemoteIP
	}
	s.Method, s.Path, s.Host, s.Headers = or(r.Method, "GET"), or(r.Path, "/"), or(r.Host, "web.foo.svc"), headers
	rego.HTTP = &authz.HTTPRequest{Method: s.Method, Path: s.Path, Host: s.Host, Headers: headers}
	if r.Claims != nil {
		iss, _ := r.Claims["iss"].(string)
		s.JWT = simulate.JWT{State: simulate.VerifiedToken, Issuer: iss, Claims: r.Claims}
		rego.Auth = authz.AuthFromClaims(r.Claims)
	}
	return sent{sim: s, rego: rego}
}

func portOf(c suiteCase) uint32 {
	if c.Req.Port == 0 {
		return 8080
	}
	return c.Req.Port
}

func spiffe(p string) string {
	if p == "" || strings.HasPrefix(p, "spiffe://") {
		return p
	}
	return "spiffe://" + p
}

// alpnFor is what an Istio client offers: Istio's mTLS ALPN, or nothing
// over plaintext (http_inspector detects HTTP).
func alpnFor(v variant) []string {
	switch {
	case !v.mtls:
		return nil
	case v.proto == simulate.TCP:
		return []string{"istio-peer-exchange", "istio"}
	case v.proto == simulate.HTTP1:
		return []string{"istio-http/1.1", "istio"}
	}
	return []string{"istio-h2", "istio"}
}

// disagreement is one case × variant where the proxy and Rego differ.
type disagreement struct {
	file, name string
	v          variant
	sim        *simulate.Result
	rego       *authz.Decision
}

func (d disagreement) String() string {
	return fmt.Sprintf("%s/%s [%s]: proxy %s (policy %q) vs rego allowed=%v rule=%q", d.file, d.name, d.v, d.sim.Verdict, d.sim.Policy, d.rego.Allowed, d.rego.Rule)
}

// TestSemanticsThroughProxy runs every semantics case through the
// sidecar's assembled config in each variant and compares the simulated
// verdict with the Rego engine's on the same request. Disagreements are
// failures: each is a request one enforcement point allows and the other
// denies.
func TestSemanticsThroughProxy(t *testing.T) {
	var all []disagreement
	ran, skipped := 0, map[string]int{}
	for _, name := range sortedNames(loadSuite(t)) {
		sf := loadSuite(t)[name]
		s := newSuite(t, name, sf)
		for _, c := range sf.Cases {
			for _, v := range variants() {
				if why := skipReason(c, v); why != "" {
					skipped[why]++
					continue
				}
				ran++
				if d, ok := s.compare(t, c, v); !ok {
					all = append(all, d)
					t.Errorf("%s\n  trace: %s", d, strings.Join(d.sim.Trace, " | "))
				}
			}
		}
	}
	t.Logf("ran %d case×variant runs; skipped %v; %d disagreements", ran, skipped, len(all))
	logByVariant(t, all)
}

// compare runs one case in one variant.
func (s *suite) compare(t *testing.T, c suiteCase, v variant) (disagreement, bool) {
	t.Helper()
	ns, labels := or(c.NS, "foo"), c.Labels
	if labels == nil {
		labels = map[string]string{"app": "web"}
	}
	in := send(c, v)
	res := s.simulator(t, ns, labels, portOf(c), v).Run(in.sim)
	pol, err := s.engine.For(context.Background(), ns, mesh.Labels(labels))
	if err != nil {
		t.Fatalf("rego for %s: %v", c.Name, err)
	}
	d, err := pol.Decide(context.Background(), in.rego)
	if err != nil && d == nil {
		t.Fatalf("rego decide %s: %v", c.Name, err)
	}
	allowed := res.Verdict == simulate.Allowed
	if len(d.Delegated) > 0 && strings.HasPrefix(res.Filter, "ward.authz.custom.") {
		// Rego leaves the decision to an external CUSTOM provider; with no
		// cluster for it the sidecar denies what its rules match (fail
		// closed, by design).
		return disagreement{}, true
	}
	if res.Reason == "client_certificate_san_rejected" {
		// The peer is outside the mesh trust domain(s): the inbound chain's
		// SAN check closes the connection before any policy runs, stricter
		// than the policy alone (fail closed, by design).
		t.Logf("%s/%s [%s]: peer %q rejected at the handshake (rego allowed=%v)", s.name, c.Name, v, in.sim.PeerURISAN, d.Allowed)
		return disagreement{}, true
	}
	dis := disagreement{file: s.name, name: c.Name, v: v, sim: res, rego: d}
	if allowed == d.Allowed && !allowed && res.Policy != "" && d.Rule != "" && res.Policy != d.Rule {
		t.Logf("deciding rule differs (both deny; Envoy reports the first matching policy by name): %s", dis)
	}
	return dis, allowed == d.Allowed
}

func sortedNames(m map[string]suiteFile) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func logByVariant(t *testing.T, ds []disagreement) {
	by := map[string]int{}
	for _, d := range ds {
		by[d.v.String()]++
	}
	t.Logf("disagreements by variant: %v", by)
}
