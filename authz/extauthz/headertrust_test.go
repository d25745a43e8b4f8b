package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz"
)

// TestClientCannotSetWardKeys: the keys that steer a check
// (x-ward-remote-ip, x-ward-namespace, x-ward-workload, x-ward-labels)
// are read from the filter's context extensions and the gRPC call's
// initial metadata, which only Ward's config sets, never from the
// client's request headers. A client sending "x-ward-remote-ip:
// xff-last" with an X-Forwarded-For naming a trusted address, or
// x-ward-namespace/x-ward-labels naming an unprotected workload, changes
// nothing; the same keys from the filter do.
func TestClientCannotSetWardKeys(t *testing.T) {
	pols := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: trusted-clients, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {remoteIpBlocks: ["10.1.1.1/32"]}}]}]
`
	s := newServer(t, Config{}, "", pols)
	req := func() *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:            &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/bar/sa/evil", Address: addr("10.0.0.66", 40000)},
			Destination:       &authv3.AttributeContext_Peer{Address: addr("10.0.0.2", 8080)},
			ContextExtensions: map[string]string{authz.ContextNamespace: "foo", authz.ContextLabels: `{"app":"web"}`},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "web.foo.svc",
				Headers: map[string]string{":method": "GET", ":path": "/", "x-forwarded-for": "10.1.1.1",
					"x-ward-remote-ip": authz.RemoteIPLastXFF, "x-ward-namespace": "open", "x-ward-labels": `{"app":"other"}`}}},
		}}
	}
	check := func(ctx context.Context, r *authv3.CheckRequest) bool {
		t.Helper()
		resp, err := s.Check(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus().GetCode() == int32(code.Code_OK)
	}
	if check(context.Background(), req()) {
		t.Error("client headers x-ward-remote-ip / x-forwarded-for made the client 10.1.1.1")
	}
	// The sidecar's ext_authz filter says how its HCM derives remote.ip:
	// then the last X-Forwarded-For entry is the client, as Envoy's
	// remote_ip is (use_remote_address false).
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-ward-remote-ip", authz.RemoteIPLastXFF))
	if !check(ctx, req()) {
		t.Error("the filter's x-ward-remote-ip metadata is not honoured")
	}
	r := req()
	r.Attributes.ContextExtensions[authz.ContextRemoteIP] = authz.RemoteIPLastXFF
	if !check(context.Background(), r) {
		t.Error("the filter's remote-ip context extension is not honoured")
	}
}
