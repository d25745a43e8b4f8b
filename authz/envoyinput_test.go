package authz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestRemoteIPFromXFF(t *testing.T) {
	for _, tc := range []struct {
		xff  string
		hops int
		want string
	}{
		{"203.0.113.5", 0, ""},                     // nothing trusted: the peer
		{"203.0.113.5", 1, "203.0.113.5"},          // one trusted proxy appended the client
		{"6.6.6.6, 203.0.113.5", 1, "203.0.113.5"}, // a client-supplied entry is ignored
		{"6.6.6.6, 203.0.113.5", 2, "6.6.6.6"},     // two trusted hops
		{"203.0.113.5", 2, ""},                     // too short
		{"not-an-ip, 10.0.0.0/8", 1, ""},           // not an address
		{" 2001:db8::1 ", 1, "2001:db8::1"},        // spaces, IPv6
	} {
		if got := remoteIP(tc.xff, tc.hops); got != tc.want {
			t.Errorf("remoteIP(%q, %d) = %q, want %q", tc.xff, tc.hops, got, tc.want)
		}
	}
}

func TestRequestFromCheck(t *testing.T) {
	payload, _ := structpb.NewStruct(map[string]any{"claims": map[string]any{"iss": "i", "sub": "s", "aud": []any{"a", "b"}, "azp": "web"}})
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: "spiffe://td/ns/a/sa/b", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1234}}}}},
		TlsSession: &authv3.AttributeContext_TLSSession{Sni: "svc.example"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/x", Host: "h", Headers: map[string]string{"X-Forwarded-For": "198.51.100.7"}}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{JWTFilter: payload}},
	}}
	r, err := RequestFromCheck(cr, CheckOptions{JWTPayloadKey: "claims", XFFTrustedHops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source.IP != "10.0.0.1" || r.Source.Principal != "spiffe://td/ns/a/sa/b" || r.SNI != "svc.example" || r.RemoteIP != "198.51.100.7" {
		t.Errorf("connection attributes: %+v", r)
	}
	if r.Auth == nil || r.Auth.Principal != "i/s" || len(r.Auth.Audiences) != 2 || r.Auth.Presenter != "web" {
		t.Errorf("auth: %+v", r.Auth)
	}
	if r.HTTP.Headers["x-forwarded-for"] == "" {
		t.Error("header names are not lower-cased")
	}
	if r, _ := RequestFromCheck(cr, CheckOptions{}); r.Auth != nil {
		t.Error("claims read from a payload key that was not configured")
	}
}
