package simulate

import (
	gotls "crypto/tls"
	"slices"
	"strings"

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
	case !versionAccepted(ctx.GetCommonTlsContext().GetTlsParams(), req.tlsVersion()):
		res.finish(TLSFailed, 0, "tls_version_rejected")
		return false
	case !cipherShared(ctx.GetCommonTlsContext().GetTlsParams(), req):
		res.finish(TLSFailed, 0, "no_shared_cipher")
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

func (r *Request) tlsVersion() uint16 {
	if r.TLSVersion == 0 {
		return gotls.VersionTLS13
	}
	return r.TLSVersion
}

// Envoy's defaults for a server (downstream) context: TLS 1.2 to 1.3.
var tlsVersions = map[tls.TlsParameters_TlsProtocol]uint16{
	tls.TlsParameters_TLSv1_0: gotls.VersionTLS10, tls.TlsParameters_TLSv1_1: gotls.VersionTLS11,
	tls.TlsParameters_TLSv1_2: gotls.VersionTLS12, tls.TlsParameters_TLSv1_3: gotls.VersionTLS13,
}

// versionAccepted applies tls_minimum/maximum_protocol_version, TLS_AUTO
// being Envoy's server defaults (TLS 1.2 and TLS 1.3).
func versionAccepted(p *tls.TlsParameters, v uint16) bool {
	lo, hi := uint16(gotls.VersionTLS12), uint16(gotls.VersionTLS13)
	if x, ok := tlsVersions[p.GetTlsMinimumProtocolVersion()]; ok {
		lo = x
	}
	if x, ok := tlsVersions[p.GetTlsMaximumProtocolVersion()]; ok {
		hi = x
	}
	return v >= lo && v <= hi
}

// cipherShared applies cipher_suites, which Envoy uses for TLS 1.2 and
// below only (TLS 1.3 suites are not configurable). A list holding
// OpenSSL operators or "ALL" is not modelled and accepts any offer, as
// does an unset list (Envoy's defaults) or a client offering any suite.
func cipherShared(p *tls.TlsParameters, req *Request) bool {
	cs := p.GetCipherSuites()
	if req.tlsVersion() >= gotls.VersionTLS13 || len(cs) == 0 || len(req.CipherSuites) == 0 {
		return true
	}
	for _, c := range cs {
		if c != "" && (c == "ALL" || strings.ContainsAny(c[:1], "!-+[") || strings.Contains(c, "|")) {
			return true
		}
	}
	for _, c := range req.CipherSuites {
		if slices.Contains(cs, c) {
			return true
		}
	}
	return false
}
