package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// FuzzCheckRequest feeds arbitrary CheckRequests (wire or JSON) through
// the conversions the ext_authz server applies to untrusted input: none
// may panic, and a request that converts must evaluate without error (an
// error would mean a fail-closed denial for a well-formed request).
func FuzzCheckRequest(f *testing.F) {
	seed := CheckFromRequest(&Request{
		Source: Peer{IP: "10.0.0.1", Port: 1, Principal: "spiffe://td/ns/a/sa/b"}, Destination: Peer{IP: "10.0.0.2", Port: 80},
		HTTP: &HTTPRequest{Method: "GET", Path: "/a/../b?x=1", Host: "h", Headers: map[string]string{"content-type": "application/json"}},
		Auth: AuthFromClaims(map[string]any{"iss": "i", "sub": "s", "aud": []any{"x"}}),
	})
	b, _ := proto.Marshal(seed)
	f.Add(b)
	j, _ := protojson.Marshal(seed)
	f.Add(j)
	f.Add([]byte(`{"attributes":{"request":{"http":{"method":"POST","path":"/%zz?a=%","body":"{","headers":{"content-type":"application/x-www-form-urlencoded","content-length":"x"}}}}}`))
	eng := fuzzEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var cr authv3.CheckRequest
		if proto.Unmarshal(data, &cr) != nil && protojson.Unmarshal(data, &cr) != nil {
			return
		}
		_, _ = EnvoyInput(&cr)
		r, err := RequestFromCheck(&cr, CheckOptions{XFFTrustedHops: 1})
		if err != nil {
			return
		}
		_ = r.Input()
		p, err := eng.For(context.Background(), "fuzz", mesh.Labels{"app": "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Decide(context.Background(), r); err != nil {
			t.Fatalf("well-formed request failed to evaluate: %v", err)
		}
	})
}

func fuzzEngine(f *testing.F) *Engine {
	cfgs := parseConfigs(f, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: fuzz}
spec:
  rules:
  - from: [{source: {principals: ["td/ns/a/*"], notIpBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {paths: ["/a/{*}/b", "*.png"], hosts: ["H*"]}}]
    when: [{key: "request.auth.claims[aud]", values: ["x"]}, {key: "request.headers[content-type]", notValues: ["text/*"]}]
`)
	e, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), EngineConfig{Timeout: time.Minute})
	if err != nil {
		f.Fatal(err)
	}
	return e
}

// FuzzPolicyCompile builds random valid AuthorizationPolicies from the
// fuzz input, compiles each to Rego (which OPA must accept) and to RBAC
// (which must pass ValidateAll), and checks both decide a handful of
// derived requests identically.
func FuzzPolicyCompile(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("principals and paths and claims"))
	f.Add([]byte{255, 254, 3, 3, 3, 17, 40, 99, 7, 7, 7, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gen{data: data}
		yml := g.policy()
		cfgs := parseConfigsLenient(yml)
		if cfgs == nil {
			return
		}
		pol, err := FromConfig(cfgs[0])
		if err != nil {
			t.Fatalf("generated policy rejected: %v\n%s", err, yml)
		}
		// A long timeout: fuzz workers load the machine, and a fail-closed
		// timeout is not what this target looks for.
		eng, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), EngineConfig{Timeout: time.Minute})
		if err != nil {
			t.Fatalf("engine rejected a valid policy:\n%s\n%v\n%s", yml, err, CompileRego(pol).Source)
		}
		p, err := eng.For(context.Background(), "ns", mesh.Labels{})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), EngineConfig{Timeout: time.Minute, DecisionCache: -1})
		if err != nil {
			t.Fatal(err)
		}
		pp, err := plain.For(context.Background(), "ns", mesh.Labels{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tcp := range []bool{false, true} {
			set, err := BuildRBAC(p.Policies(), tcp)
			if err != nil {
				if strings.Contains(err.Error(), "cannot be expressed in RBAC") {
					continue
				}
				t.Fatalf("BuildRBAC: %v\n%s", err, yml)
			}
			if _, err := HTTPFilters(p.Policies(), FilterConfig{Enforcement: EnforceRBAC}); err != nil {
				t.Fatalf("HTTPFilters: %v\n%s", err, yml)
			}
			for i := 0; i < 4; i++ {
				r := g.request(tcp)
				d, err := p.Decide(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				u, err := pp.Decide(context.Background(), r)
				if err != nil || u.Allowed != d.Allowed || u.Rule != d.Rule {
					t.Fatalf("cached %v %q, uncached %v %q (%v)\n%s", d.Allowed, d.Rule, u.Allowed, u.Rule, err, yml)
				}
				allowed, rule := decideRBAC(set, r)
				if allowed != d.Allowed || rule != d.Rule {
					t.Fatalf("rego %v %q, rbac %v %q for %+v %+v\n%s\n%s", d.Allowed, d.Rule, allowed, rule, r, r.HTTP, yml, CompileRego(pol).Source)
				}
			}
		}
	})
}

func parseConfigsLenient(src string) []*mesh.Config {
	docs, err := schema.SplitYAML([]byte(src))
	if err != nil || len(docs) != 1 {
		return nil
	}
	dec, err := schema.Decode(docs[0], mesh.Source{})
	if err != nil || dec.Config == nil {
		return nil
	}
	return []*mesh.Config{dec.Config}
}

// gen draws choices from fuzz bytes.
type gen struct {
	data []byte
	i    int
}

func (g *gen) n(k int) int {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[g.i%len(g.data)]
	g.i++
	return int(b) % k
}

func (g *gen) pick(xs ...string) string { return xs[g.n(len(xs))] }

var (
	genPrincipals = []string{"td/ns/a/sa/b", "td/ns/a/*", "*/sa/b", "*", "td/ns/c/sa/d"}
	genNamespaces = []string{"a", "c", "a*", "*c", "*"}
	genIPs        = []string{"10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "2001:db8::/32"}
	genHosts      = []string{"h.example", "*.example", "H.EXAMPLE", "api*"}
	genMethods    = []string{"GET", "POST", "DELETE"}
	genPaths      = []string{"/a", "/a/*", "*.png", "/a/{*}/c", "/b/{**}", "/"}
	genPorts      = []string{"80", "8080", "9090"}
	genValues     = []string{"x", "y*", "*z", "*"}
)

func (g *gen) list(xs []string) string {
	n := 1 + g.n(2)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%q", g.pick(xs...))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func (g *gen) policy() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: fz, namespace: ns}\nspec:\n  action: %s\n  rules:\n", g.pick("ALLOW", "DENY", "AUDIT"))
	for r := 0; r < 1+g.n(3); r++ {
		b.WriteString("  - {")
		var parts []string
		if g.n(2) == 0 {
			parts = append(parts, "from: ["+g.sources()+"]")
		}
		if g.n(2) == 0 {
			parts = append(parts, "to: ["+g.operations()+"]")
		}
		if g.n(3) == 0 {
			parts = append(parts, "when: ["+g.condition()+"]")
		}
		b.WriteString(strings.Join(parts, ", ") + "}\n")
	}
	return b.String()
}

func (g *gen) sources() string {
	var out []string
	for i := 0; i < 1+g.n(2); i++ {
		fields := map[string][]string{"principals": genPrincipals, "notPrincipals": genPrincipals, "namespaces": genNamespaces,
			"notNamespaces": genNamespaces, "ipBlocks": genIPs, "notIpBlocks": genIPs, "remoteIpBlocks": genIPs, "requestPrincipals": {"iss/sub", "*", "iss/*", "iss/a/b", "iss/a*", "is*", "*/b", "*b", "*a/b", "iss*"}}
		names := []string{"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "requestPrincipals"}
		var fs []string
		for j := 0; j < 1+g.n(2); j++ {
			n := names[g.n(len(names))]
			fs = append(fs, n+": "+g.list(fields[n]))
		}
		out = append(out, "{source: {"+strings.Join(dedupe(fs), ", ")+"}}")
	}
	return strings.Join(out, ", ")
}

func (g *gen) operations() string {
	var out []string
	for i := 0; i < 1+g.n(2); i++ {
		fields := map[string][]string{"hosts": genHosts, "notHosts": genHosts, "methods": genMethods, "notMethods": genMethods,
			"paths": genPaths, "notPaths": genPaths, "ports": genPorts, "notPorts": genPorts}
		names := []string{"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths", "ports", "notPorts"}
		var fs []string
		for j := 0; j < 1+g.n(2); j++ {
			n := names[g.n(len(names))]
			fs = append(fs, n+": "+g.list(fields[n]))
		}
		out = append(out, "{operation: {"+strings.Join(dedupe(fs), ", ")+"}}")
	}
	return strings.Join(out, ", ")
}

func (g *gen) condition() string {
	key := g.pick("request.headers[x-h]", "source.ip", "destination.port", "connection.sni", "request.auth.claims[grp]", "source.namespace", "request.auth.audiences")
	vals := genValues
	switch key {
	case "source.ip":
		vals = genIPs
	case "destination.port":
		vals = genPorts
	}
	return fmt.Sprintf("{key: %q, %s: %s}", key, g.pick("values", "notValues"), g.list(vals))
}

func dedupe(fs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		k, _, _ := strings.Cut(f, ":")
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	return out
}

func (g *gen) request(tcp bool) *Request {
	r := &Request{
		Source:      Peer{IP: g.pick("10.0.0.5", "192.168.3.4", "2001:db8::9", "8.8.8.8"), Principal: g.pick("", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/c/sa/d", "spiffe://td/ns/ac/sa/x")},
		Destination: Peer{IP: "10.9.9.9", Port: uint32([]int{80, 8080, 9090}[g.n(3)])},
		SNI:         g.pick("", "x", "yy", "az"),
	}
	if tcp {
		return r
	}
	r.HTTP = &HTTPRequest{Method: g.pick(genMethods...), Path: g.pick("/a", "/a/b", "/a/b/c", "/x.png", "/b/", "/b/q/r", "/", "/a/../b/z"),
		Host: g.pick("h.example", "H.example", "api.x", "other"), Headers: map[string]string{}}
	if g.n(2) == 0 {
		r.HTTP.Headers["x-h"] = g.pick("x", "yes", "az", "")
	}
	if g.n(2) == 0 {
		// Issuers and subjects with "/" (issue 12 hole 3): "iss/a" + "b"
		// and "iss" + "a/b" are the same principal.
		r.Auth = AuthFromClaims(map[string]any{"iss": g.pick("iss", "iss/a", "is"), "sub": g.pick("sub", "other", "a/b", "b", "s/b"), "grp": []any{g.pick("x", "yy")}, "aud": g.pick("x", "z")})
	}
	return r
}
