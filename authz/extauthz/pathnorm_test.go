package extauthz

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/code"
)

// TestPathNormalization is issue 12 hole 2 at Ward's ext_authz server:
// it matches the path Envoy's HCM hands to its filters at the mesh's
// pathNormalization level (authz.NormalizePath), and denies a path Envoy
// rejects. Before, "admin" and "/a/%2e%2e/admin" got past a DENY on
// /admin.
func TestPathNormalization(t *testing.T) {
	const deny = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
`
	meshAt := func(level string) string {
		if level == "" {
			return ""
		}
		return "apiVersion: config.wardmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  pathNormalization: {normalization: " + level + "}\n"
	}
	for _, tc := range []struct {
		level string
		path  string
		allow bool
	}{
		{"", "/admin", false},
		{"", "admin", false},
		{"", "/a/%2e%2e/admin", false},
		{"", "/public/../admin", false},
		{"", "/%61dmin", false},
		{"", "/x\\..\\admin", false},
		{"", "/admin#frag", false},
		{"", "//admin", true}, // BASE does not merge slashes, nor does Envoy
		{"", "/public", true},
		{"NONE", "/public/../admin", true},
		{"NONE", "admin", false},
		{"MERGE_SLASHES", "//admin", false},
		{"MERGE_SLASHES", "/admin%2Fx", true},
		{"DECODE_AND_MERGE_SLASHES", "/admin%2Fx", false},
		{"DECODE_AND_MERGE_SLASHES", "/x%2F..%2Fadmin", false},
	} {
		s := newServer(t, Config{}, meshAt(tc.level), deny)
		resp, err := s.Check(context.Background(), check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", tc.path))
		if err != nil {
			t.Fatal(err)
		}
		allowed := resp.GetStatus().GetCode() == int32(code.Code_OK)
		if allowed != tc.allow {
			t.Errorf("level %q path %q: allowed %v, want %v (reason %q)", tc.level, tc.path, allowed, tc.allow, reasonOf(resp))
		}
	}
}

// TestProxylessTCPPort is issue 12 hole 1 for proxyless workloads that
// enforce through ext_authz: grpc-go serves a TCP-protocol port with
// HTTP/2, yet Istio judges it as TCP, so the interceptor's check is judged
// as the connection: a DENY whose only other condition is HTTP-only is
// broadened to every call of the principal. On a GRPC port the path
// condition holds.
func TestProxylessTCPPort(t *testing.T) {
	const cfg = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: main, protocol: %s}]
  workloadSelector: {labels: {app: cart}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart-1, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: cart}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-web-admin, namespace: shop}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]
    to: [{operation: {paths: ["/admin"]}}]
`
	for proto, allow := range map[string]bool{"TCP": false, "GRPC": true} {
		s := newServer(t, Config{}, "", strings.Replace(cfg, "%s", proto, 1))
		resp, err := s.Check(context.Background(), proxylessCheck("", true))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetStatus().GetCode() == int32(code.Code_OK); got != allow {
			t.Errorf("%s port: proxyless call allowed %v, want %v (reason %q)", proto, got, allow, reasonOf(resp))
		}
	}
}
