package grpcauthz

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPathNormalizedLikeEnvoy is issue 12 hole 2 for the proxyless
// interceptor: the method path it reports is matched by the ext_authz
// server after the same normalisation Envoy's HCM applies
// (authz.NormalizePath at the mesh's level, BASE here), so no spelling of
// /admin gets past a DENY on it, and a path Envoy would reject is denied.
func TestPathNormalizedLikeEnvoy(t *testing.T) {
	var log syncBuffer
	snap := snapshot(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
`)
	a, err := New(Config{Client: extAuthz(t, snap, &log), Namespace: "shop", Labels: map[string]string{"app": "cart"}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for path, allow := range map[string]bool{
		"/admin": false, "admin": false, "/a/%2e%2e/admin": false, "/x/../admin": false,
		"/%61dmin": false, "/admin/Op": false, "/x\\..\\admin": false, "/pkg.Svc/Op": true,
	} {
		_, _, _, err := a.authorize(context.Background(), path)
		if allow && err != nil {
			t.Errorf("%q: denied: %v", path, err)
		}
		if !allow && status.Code(err) != codes.PermissionDenied {
			t.Errorf("%q: %v, want PermissionDenied", path, err)
		}
	}
}
