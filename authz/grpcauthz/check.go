package grpcauthz

import (
	"context"
	"crypto/x509"
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// checkRequest renders an RPC as the CheckRequest Envoy's ext_authz
// filter would send for it: source = the peer (principal from its
// certificate), destination = the local address, an HTTP/2 POST of the
// full method with the incoming metadata as headers (lower case, binary
// -bin headers left out, repeated values joined by ","), and the
// workload in context extensions with the proxyless marker.
func (a *Authorizer) checkRequest(ctx context.Context, method string) *authv3.CheckRequest {
	md, _ := metadata.FromIncomingContext(ctx)
	headers := make(map[string]string, len(md)+3)
	for k, vs := range md {
		k = strings.ToLower(k)
		if strings.HasSuffix(k, "-bin") {
			continue
		}
		headers[k] = strings.Join(vs, ",")
	}
	attrs := &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{},
		Destination:       &authv3.AttributeContext_Peer{},
		ContextExtensions: a.ext,
	}
	scheme := "http"
	if p, ok := peer.FromContext(ctx); ok {
		attrs.Source.Address = socketAddress(p.Addr)
		attrs.Destination.Address = socketAddress(p.LocalAddr)
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			scheme = "https"
			if certs := ti.State.PeerCertificates; len(certs) > 0 {
				attrs.Source.Principal = principal(certs[0])
			}
			if sni := ti.State.ServerName; sni != "" {
				attrs.TlsSession = &authv3.AttributeContext_TLSSession{Sni: sni}
			}
		}
	}
	host := headers[":authority"]
	headers[":method"], headers[":path"], headers[":scheme"] = "POST", method, scheme
	attrs.Request = &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Method: "POST", Path: method, Host: host, Scheme: scheme, Protocol: "HTTP/2", Headers: headers,
	}}
	return &authv3.CheckRequest{Attributes: attrs}
}

// principal is the peer identity as Envoy reports it: the first URI SAN
// (the SPIFFE ID of a mesh certificate), else the first DNS SAN, else
// the subject. The certificate was verified by the transport credentials
// (grpc's xDS credentials check it against the mesh roots).
func principal(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

func socketAddress(a net.Addr) *corev3.Address {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP == nil {
		return nil
	}
	ip := tcp.IP.String()
	if v4 := tcp.IP.To4(); v4 != nil {
		ip = v4.String()
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(tcp.Port)},
	}}}
}
