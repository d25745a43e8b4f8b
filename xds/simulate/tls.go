package simulate

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// handshake applies the chain's transport socket: a TLS socket needs a
// TLS client (and a client certificate when it requires one); a
// plaintext chain passes TLS bytes through untouched.
func handshake(fc *listener.FilterChain, req *Request, a *attrs, res *Result) bool {
	ctx, isTLS := downstreamTLS(fc)
	switch {
	case !isTLS:
		res.tracef("plaintext transport socket")
		return true
	case !req.TLS:
		res.finish(TLSFailed, 0, "plaintext_to_tls_chain")
		return false
	case ctx.GetRequireClientCertificate().GetValue() && !req.hasPeerCert():
		res.finish(TLSFailed, 0, "client_certificate_required")
		return false
	}
	a.ssl = true
	res.tracef("TLS terminated (client certificate required: %v, peer %q)", ctx.GetRequireClientCertificate().GetValue(), req.PeerURISAN)
	return true
}

// downstreamTLS decodes the chain's DownstreamTlsContext, if any.
func downstreamTLS(fc *listener.FilterChain) (*tls.DownstreamTlsContext, bool) {
	ts := fc.GetTransportSocket()
	if ts == nil {
		return nil, false
	}
	ctx, ok := unpack(ts.GetTypedConfig()).(*tls.DownstreamTlsContext)
	if !ok {
		// A TLS socket whose config we cannot read still terminates TLS.
		return &tls.DownstreamTlsContext{}, ts.GetName() == "envoy.transport_sockets.tls"
	}
	return ctx, true
}
