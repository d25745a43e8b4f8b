package authz

import (
	"context"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/wardmesh/ward/mesh"
)

// keyRequest sets every attribute a request can carry.
func keyRequest() *Request {
	return &Request{
		Source:      Peer{IP: "10.0.0.1", Port: 40000, Principal: "spiffe://cluster.local/ns/team-9/sa/web"},
		Destination: Peer{IP: "10.0.0.2", Port: 8080},
		RemoteIP:    "192.168.0.1",
		SNI:         "bench.example",
		HTTP: &HTTPRequest{Method: "GET", Path: "/api/v9/items?page=2", Host: "bench.bench.svc",
			Headers: map[string]string{"x-tenant": "tenant-9", "user-agent": "bench"}},
		Auth: &Auth{Principal: "issuer/alice", Audiences: []string{"aud1"}, Presenter: "azp1",
			Claims: map[string]any{"groups": []any{"admins"}, "email": "alice@example.com"}},
	}
}

// keyMutations change one thing of keyRequest each; affects lists the
// input attributes (inputplan leaf paths, request.headers[..],
// request.auth.claims[..]) whose value changes.
var keyMutations = []struct {
	name    string
	affects []string
	mut     func(*Request)
}{
	{"source ip", []string{"source.ip"}, func(r *Request) { r.Source.IP = "10.0.0.9" }},
	{"source port", nil, func(r *Request) { r.Source.Port = 40001 }},
	{"trust domain", []string{"source.principal", "source.trust_domain"}, func(r *Request) { r.Source.Principal = "spiffe://other.td/ns/team-9/sa/web" }},
	{"service account", []string{"source.principal", "source.service_account"}, func(r *Request) { r.Source.Principal = "spiffe://cluster.local/ns/team-9/sa/api" }},
	{"namespace", []string{"source.principal", "source.namespace", "source.service_account"}, func(r *Request) { r.Source.Principal = "spiffe://cluster.local/ns/team-8/sa/web" }},
	{"principal scheme", nil, func(r *Request) { r.Source.Principal = "cluster.local/ns/team-9/sa/web" }},
	{"remote ip", []string{"remote.ip"}, func(r *Request) { r.RemoteIP = "192.168.0.2" }},
	{"destination ip", []string{"destination.ip"}, func(r *Request) { r.Destination.IP = "10.0.0.3" }},
	{"destination port", []string{"destination.port"}, func(r *Request) { r.Destination.Port = 9090 }},
	{"sni", []string{"sni"}, func(r *Request) { r.SNI = "other.example" }},
	{"method", []string{"request.method"}, func(r *Request) { r.HTTP.Method = "POST" }},
	{"path", []string{"request.path"}, func(r *Request) { r.HTTP.Path = "/api/v8/items?page=2" }},
	{"path query", nil, func(r *Request) { r.HTTP.Path = "/api/v9/items?page=3" }},
	{"host", []string{"request.host"}, func(r *Request) { r.HTTP.Host = "other.bench.svc" }},
	{"host case", nil, func(r *Request) { r.HTTP.Host = "Bench.Bench.Svc" }},
	{"read header", []string{"request.headers[x-tenant]"}, func(r *Request) { r.HTTP.Headers["x-tenant"] = "tenant-8" }},
	{"read header removed", []string{"request.headers[x-tenant]"}, func(r *Request) { delete(r.HTTP.Headers, "x-tenant") }},
	{"other header", nil, func(r *Request) { r.HTTP.Headers["user-agent"] = "curl" }},
	{"new header", nil, func(r *Request) { r.HTTP.Headers["x-request-id"] = "42" }},
	{"tcp", []string{"http", "request.method", "request.path", "request.host", "request.headers[x-tenant]"}, func(r *Request) { r.HTTP = nil }},
	{"request principal", []string{"auth.principal"}, func(r *Request) { r.Auth.Principal = "issuer/bob" }},
	{"audiences", []string{"auth.audiences"}, func(r *Request) { r.Auth.Audiences = []string{"aud1", "aud2"} }},
	{"presenter", []string{"auth.presenter"}, func(r *Request) { r.Auth.Presenter = "azp2" }},
	{"read claim", []string{"request.auth.claims[groups]"}, func(r *Request) { r.Auth.Claims["groups"] = []any{"users"} }},
	{"other claim", nil, func(r *Request) { r.Auth.Claims["email"] = "bob@example.com" }},
	{"no jwt", []string{"auth.principal", "auth.audiences", "auth.presenter", "request.auth.claims[groups]"}, func(r *Request) { r.Auth = nil }},
	{"check request", nil, func(r *Request) { r.Check = &authv3.CheckRequest{} }},
}

// TestCacheKeyIsExactlyWhatRulesRead holds the decision cache key to the
// input attributes the workload's compiled rules read: for each policy set
// it checks the analysed read set against the one the policies spell out,
// then changes every attribute of a request in turn and expects a cache
// miss exactly when a read attribute changed, a hit otherwise.
func TestCacheKeyIsExactlyWhatRulesRead(t *testing.T) {
	for _, tc := range []struct {
		name, policies string
		reads          []string
	}{{
		name: "principals methods paths header claim",
		policies: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: bench}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/team-9/sa/*"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/api/*"]}}]
    when:
    - {key: "request.headers[x-tenant]", values: ["tenant-9"]}
    - {key: "request.auth.claims[groups]", values: ["admins"]}
`,
		reads: []string{"http", "source.principal", "request.method", "request.path", "request.headers[x-tenant]", "request.auth.claims[groups]"},
	}, {
		name: "connection and jwt attributes",
		policies: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: bench}
spec:
  rules:
  - from: [{source: {namespaces: ["team-9"], ipBlocks: ["10.0.0.0/8"], remoteIpBlocks: ["192.168.0.0/16"], requestPrincipals: ["issuer/*"]}}]
    to: [{operation: {hosts: ["bench.bench.svc"], ports: ["8080"]}}]
    when:
    - {key: destination.ip, values: ["10.0.0.2"]}
    - {key: connection.sni, values: ["bench.example"]}
    - {key: request.auth.audiences, values: ["aud1"]}
    - {key: request.auth.presenter, values: ["azp1"]}
`,
		reads: []string{"http", "source.namespace", "source.ip", "remote.ip", "auth.principal", "request.host",
			"destination.port", "destination.ip", "sni", "auth.audiences", "auth.presenter"},
	}, {
		name: "service accounts on tcp and http",
		policies: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: bench}
spec:
  rules: [{from: [{source: {serviceAccounts: ["team-9/web"]}}]}]
`,
		reads: []string{"source.service_account"},
	}, {
		name: "trust domains",
		policies: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: bench}
spec:
  rules:
  - from: [{source: {trustDomains: ["cluster.local"]}}]
  - when: [{key: source.trustDomain, values: ["*.corp"]}]
`,
		reads: []string{"source.trust_domain"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			snap := mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(t, tc.policies))
			eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
			if err != nil {
				t.Fatal(err)
			}
			p, err := eng.For(context.Background(), "bench", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, want := p.plan.reads(), slices.Sorted(slices.Values(tc.reads))
			if !slices.Equal(got, want) {
				t.Fatalf("compiled rules read %q, want %q", got, want)
			}
			for _, m := range keyMutations {
				miss := slices.ContainsFunc(m.affects, func(a string) bool { return slices.Contains(tc.reads, a) })
				clear(p.cache.m)
				if _, err := p.Decide(context.Background(), keyRequest()); err != nil {
					t.Fatal(err)
				}
				r := keyRequest()
				m.mut(r)
				if _, err := p.Decide(context.Background(), r); err != nil {
					t.Fatal(err)
				}
				if gotMiss := len(p.cache.m) == 2; gotMiss != miss {
					t.Errorf("%s: cache miss %t, want %t (changes %q)", m.name, gotMiss, miss, m.affects)
				}
			}
		})
	}
}
