package extauthz

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/authztest"
)

// The authz semantics suite (authz/testdata/semantics), judged by the
// ext_authz server as Envoy calls it: each case becomes the CheckRequest
// Envoy's ext_authz filter sends (raw path, peer principal, jwt_authn
// payload metadata, X-Forwarded-For), so the server's request parsing,
// path normalisation and workload lookup are held to the same verdicts
// as the Rego engine and the RBAC output (authz TestSemantics,
// TestRBACAgreesWithRego).

// The suite's data format and loader are authz's (authztest).
type suiteCase = authztest.Case

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkFor renders a case as Envoy's CheckRequest; ok is false when the
// case cannot be carried by one (remote.ip of a TCP connection: there is
// no X-Forwarded-For).
func checkFor(t *testing.T, c suiteCase) (*authv3.CheckRequest, bool) {
	r := c.Req
	if r.TCP && r.RemoteIP != "" {
		return nil, false
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{"app": "web"}
	}
	lj, _ := json.Marshal(labels)
	port := r.Port
	if port == 0 {
		port = 8080
	}
	a := &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Principal: r.Principal, Address: addr(or(r.IP, "10.0.0.1"), 40000)},
		Destination:       &authv3.AttributeContext_Peer{Address: addr(or(r.DstIP, "10.0.0.2"), port)},
		ContextExtensions: map[string]string{authz.ContextNamespace: or(c.NS, "foo"), authz.ContextLabels: string(lj)},
	}
	if r.SNI != "" {
		a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: r.SNI}
	}
	if !r.TCP {
		method, path := or(r.Method, "GET"), or(r.Path, "/")
		h := map[string]string{":method": method, ":path": path}
		for k, v := range r.Headers {
			h[strings.ToLower(k)] = v
		}
		if r.RemoteIP != "" {
			h["x-forwarded-for"] = r.RemoteIP
		}
		a.Request = &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: or(r.Host, "web.foo.svc"), Headers: h}}
	}
	if r.Claims != nil {
		payload, err := structpb.NewStruct(map[string]any{authz.DefaultJWTPayloadKey: r.Claims})
		if err != nil {
			t.Fatalf("claims: %v", err)
		}
		a.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{authz.JWTFilter: payload}}
	}
	return &authv3.CheckRequest{Attributes: a}, true
}

func TestSemanticsSuite(t *testing.T) {
	n := 0
	for name, sf := range authztest.LoadSemantics(t) {
		// One trusted proxy hop: remote.ip is the X-Forwarded-For entry
		// the case names.
		s := newServer(t, Config{XFFTrustedHops: 1}, sf.Mesh, sf.Policies)
		for _, c := range sf.Cases {
			req, ok := checkFor(t, c)
			if !ok {
				continue
			}
			n++
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				resp, err := s.Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if allowed := resp.GetStatus().GetCode() == int32(code.Code_OK); allowed != c.Allow {
					t.Errorf("ext_authz server: allowed %v, want %v (reason %q)", allowed, c.Allow, reasonOf(resp))
				}
			})
		}
	}
	if n < 150 {
		t.Errorf("only %d cases judged by the ext_authz server", n)
	}
}
