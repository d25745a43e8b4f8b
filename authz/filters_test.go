package authz

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	extauthzhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
)

var update = flag.Bool("update", false, "rewrite golden files")

const filterPolicies = `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: ext
    envoyExtAuthzGrpc: {service: authz.ext.svc.cluster.local, port: 9000, timeout: 300ms}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: app}
spec:
  action: CUSTOM
  provider: {name: ext}
  rules: [{to: [{operation: {paths: ["/ext/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad, namespace: app}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/app/sa/bad"], notNamespaces: ["ops"]}}]
  - to: [{operation: {methods: ["DELETE"], paths: ["/items/{*}"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-deny
  namespace: app
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{when: [{key: "request.headers[x-debug]", values: ["*"]}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: app}
spec:
  rules:
  - from: [{source: {namespaces: ["app", "web-*"]}}, {source: {requestPrincipals: ["https://idp/*"]}}]
    to: [{operation: {hosts: ["api.example.com"], ports: ["8080"]}}]
    when: [{key: "request.auth.claims[groups]", values: ["admins"]}, {key: source.ip, notValues: ["10.9.0.0/16"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: app}
spec:
  action: AUDIT
  rules: [{to: [{operation: {methods: ["POST"]}}]}]
`

func goldenFilters(t *testing.T, name string, msgs []proto.Message) {
	t.Helper()
	got := stableJSON(t, msgs)
	path := filepath.Join("testdata", "filters", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	// Compare as structures so formatting differences do not matter.
	var w, g structpb.ListValue
	if err := protojson.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal([]byte(got), &g); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&w, &g, protocmp.Transform()); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

func filterModel(t *testing.T) ([]*Policy, mesh.MeshConfig) {
	t.Helper()
	cfgs := parseConfigs(t, filterPolicies)
	mc := meshConfigOf(t, strings.SplitN(filterPolicies, "---", 2)[0])
	snap := mesh.NewSnapshot(mc, cfgs)
	ps, err := ModelFor(snap, &mesh.Proxy{ID: "p", Namespace: "app", Labels: mesh.Labels{"app": "api"}})
	if err != nil {
		t.Fatal(err)
	}
	return ps, snap.Mesh()
}

func TestFilterGoldens(t *testing.T) {
	ps, mc := filterModel(t)
	cluster := func(ep mesh.ExtensionProvider) string { return "outbound|9000||" + ep.EnvoyExtAuthzGRPC.Service }
	w := Workload{Namespace: "app", Name: "api-1", Labels: mesh.Labels{"app": "api"}}
	for _, tc := range []struct {
		name string
		cfg  FilterConfig
		tcp  bool
	}{
		{"http-rbac", FilterConfig{Workload: w, Enforcement: EnforceRBAC, Mesh: mc, ProviderCluster: cluster}, false},
		{"http-extauthz", FilterConfig{Workload: w, Enforcement: EnforceExtAuthz, ExtAuthzCluster: "outbound|9191||ward-authz", Mesh: mc, ProviderCluster: cluster}, false},
		{"grpc-rbac", FilterConfig{Workload: w, Enforcement: EnforceRBAC, Mesh: mc, ForGRPC: true}, false},
		{"tcp-rbac", FilterConfig{Workload: w, Enforcement: EnforceRBAC, Mesh: mc, ProviderCluster: cluster}, true},
		{"tcp-extauthz", FilterConfig{Workload: w, Enforcement: EnforceExtAuthz, ExtAuthzCluster: "outbound|9191||ward-authz", Mesh: mc}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []proto.Message
			if tc.tcp {
				fs, err := NetworkFilters(ps, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					if err := f.ValidateAll(); err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, f)
				}
			} else {
				fs, err := HTTPFilters(ps, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					if err := f.ValidateAll(); err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, f)
				}
			}
			goldenFilters(t, tc.name, msgs)
		})
	}
}

func TestHookFailsClosedOnInvalidPolicy(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: app}
spec:
  action: DENY
  rules: [{to: [{operation: {ports: ["http"]}}]}]
`)
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
	fs, err := HookConfig{}.InboundHTTPFilters(snap, &mesh.Proxy{ID: "p", Namespace: "app", Type: mesh.ProxyGRPC})
	if err == nil || len(fs) != 1 {
		t.Fatalf("want one deny-all filter and an error, got %d filters, err %v", len(fs), err)
	}
	set := &RBACSet{Allow: DenyAllHTTP().Rules}
	if allowed, _ := decideRBAC(set, &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/"}}); allowed {
		t.Error("deny-all RBAC allowed a request")
	}
}

func TestFingerprintFollowsApplicablePolicies(t *testing.T) {
	cfgs := parseConfigs(t, filterPolicies)
	a := mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)
	p := &mesh.Proxy{Namespace: "app"}
	other := &mesh.Proxy{Namespace: "elsewhere"}
	b := mesh.NewSnapshot(mesh.MeshConfig{}, cfgs[:len(cfgs)-1])
	if Fingerprint(a, p) == Fingerprint(b, p) {
		t.Error("fingerprint did not change when an applicable policy was removed")
	}
	if Fingerprint(a, other) != Fingerprint(b, other) {
		t.Error("fingerprint changed for a proxy no policy applies to")
	}
	if Fingerprint(a, p) != Fingerprint(mesh.NewSnapshot(mesh.MeshConfig{}, parseConfigs(t, filterPolicies)), p) {
		t.Error("fingerprint is not deterministic")
	}
}

func TestExtAuthzRequestsBodyForRegoProvider(t *testing.T) {
	mc := meshConfigOf(t, `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders: [{name: opa, rego: {module: "package envoy.authz\nimport rego.v1\nallow := true"}}]
`)
	snap := mesh.NewSnapshot(mc, parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: a}
spec: {action: CUSTOM, provider: {name: opa}, rules: [{}]}
`))
	ps, err := ModelFor(snap, &mesh.Proxy{Namespace: "a"})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := HTTPFilters(ps, FilterConfig{Enforcement: EnforceExtAuthz, ExtAuthzCluster: "ward", Mesh: snap.Mesh()})
	if err != nil {
		t.Fatal(err)
	}
	var ea extauthzhttp.ExtAuthz
	if err := fs[len(fs)-1].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatal(err)
	}
	if ea.GetWithRequestBody().GetMaxRequestBytes() != MaxBodyBytes || ea.GetFailureModeAllow() || ea.GetStatusOnError().GetCode() != 403 {
		t.Errorf("ext_authz config: %v", &ea)
	}
}

// TestRegoProviderWithoutExtAuthzFailsClosed: proxyless gRPC cannot call
// Ward's ext_authz server, so a CUSTOM rego provider's rules deny there.
func TestRegoProviderWithoutExtAuthzFailsClosed(t *testing.T) {
	mc := meshConfigOf(t, `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders: [{name: opa, rego: {module: "package envoy.authz\nimport rego.v1\nallow := true"}}]
`)
	snap := mesh.NewSnapshot(mc, parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: a}
spec: {action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ["/x"]}}]}]}
`))
	fs, err := HookConfig{}.InboundHTTPFilters(snap, &mesh.Proxy{Namespace: "a", Type: mesh.ProxyGRPC})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].GetName() != FilterName("custom.opa") {
		t.Fatalf("filters: %v", fs)
	}
	var r rbachttp.RBAC
	if err := fs[0].GetTypedConfig().UnmarshalTo(&r); err != nil {
		t.Fatal(err)
	}
	set := &RBACSet{Deny: r.GetRules()}
	if allowed, _ := decideRBAC(set, &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/x"}}); allowed {
		t.Error("a CUSTOM rego rule was not enforced for proxyless gRPC")
	}
	if allowed, _ := decideRBAC(set, &Request{HTTP: &HTTPRequest{Method: "GET", Path: "/y"}}); !allowed {
		t.Error("requests outside the CUSTOM rules were denied")
	}
}

// stableJSON renders messages as indented JSON with sorted keys:
// protojson's own output varies its whitespace on purpose.
func stableJSON(t *testing.T, msgs []proto.Message) string {
	t.Helper()
	var list []any
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		list = append(list, v)
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}
