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
	case req.hasPeerCert() && !sanAccepted(validationContext(ctx), req):
		res.finish(TLSFailed, 0, "client_certificate_san_rejected")
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

// validationContext is the inline part of the chain's certificate
// validation (SDS-delivered parts carry only trust anchors).
func validationContext(ctx *tls.DownstreamTlsContext) *tls.CertificateValidationContext {
	c := ctx.GetCommonTlsContext()
	if vc := c.GetValidationContext(); vc != nil {
		return vc
	}
	return c.GetCombinedValidationContext().GetDefaultValidationContext()
}

// sanAccepted applies match_typed_subject_alt_names: with matchers, one
// of the peer certificate's SANs must match one of them.
func sanAccepted(vc *tls.CertificateValidationContext, req *Request) bool {
	ms := vc.GetMatchTypedSubjectAltNames()
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		for _, san := range sansOfType(req, m.GetSanType()) {
			if stringMatches(m.GetMatcher(), san) {
				return true
			}
		}
	}
	return false
}

func sansOfType(req *Request, t tls.SubjectAltNameMatcher_SanType) []string {
	switch t {
	case tls.SubjectAltNameMatcher_URI:
		if req.PeerURISAN != "" {
			return []string{req.PeerURISAN}
		}
	case tls.SubjectAltNameMatcher_DNS:
		return req.PeerDNSSANs
	}
	return nil
}
