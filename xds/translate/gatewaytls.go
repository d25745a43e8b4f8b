package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// DefaultGatewayMinTLS is the lowest TLS version a gateway server that
// terminates TLS accepts unless its minProtocolVersion says otherwise:
// TLS 1.2, Envoy's server default, which Istio's gateways inherit. Ward
// writes it out so the floor does not depend on the proxy's build.
const DefaultGatewayMinTLS = tlsv3.TlsParameters_TLSv1_2

// downstreamTLS is a gateway server's TLS context, built as Istio's
// BuildListenerTLSContext builds it: certificates (serverCertificates),
// client validation for MUTUAL and OPTIONAL_MUTUAL (clientValidation)
// and, for SIMPLE and the mutual modes, the protocol versions, cipher
// suites and ECDH curves of the server (tlsParams). ISTIO_MUTUAL uses the
// workload's own certificate and roots.
func downstreamTLS(t *networking.ServerTLSSettings) *tlsv3.DownstreamTlsContext {
	common := &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	if t.GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()}}
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
		return ctx
	}
	common.TlsCertificateSdsSecretConfigs, common.TlsCertificates = serverCertificates(t)
	if mutual(t) {
		ctx.RequireClientCertificate = wrapperspb.Bool(t.GetMode() == networking.ServerTLSSettings_MUTUAL)
		clientValidation(common, t)
	}
	common.TlsParams = tlsParams(t)
	return ctx
}

func mutual(t *networking.ServerTLSSettings) bool {
	return t.GetMode() == networking.ServerTLSSettings_MUTUAL || t.GetMode() == networking.ServerTLSSettings_OPTIONAL_MUTUAL
}

// serverCertificates returns the server's certificates: one SDS secret
// per credentialNames entry (an RSA and an ECDSA one, Envoy picks by the
// client's signature algorithms) or for credentialName, else one inline
// file pair per tlsCertificates entry or for serverCertificate and
// privateKey.
func serverCertificates(t *networking.ServerTLSSettings) ([]*tlsv3.SdsSecretConfig, []*tlsv3.TlsCertificate) {
	if names := credentialNames(t); len(names) > 0 {
		sds := make([]*tlsv3.SdsSecretConfig, 0, len(names))
		for _, n := range names {
			sds = append(sds, &tlsv3.SdsSecretConfig{Name: CredentialPrefix + n, SdsConfig: adsSource()})
		}
		return sds, nil
	}
	if certs := t.GetTlsCertificates(); len(certs) > 0 {
		out := make([]*tlsv3.TlsCertificate, 0, len(certs))
		for _, c := range certs {
			out = append(out, fileCertificate(c.GetServerCertificate(), c.GetPrivateKey()))
		}
		return nil, out
	}
	return nil, []*tlsv3.TlsCertificate{fileCertificate(t.GetServerCertificate(), t.GetPrivateKey())}
}

func credentialNames(t *networking.ServerTLSSettings) []string {
	if len(t.GetCredentialNames()) > 0 {
		return t.GetCredentialNames()
	}
	if t.GetCredentialName() != "" {
		return []string{t.GetCredentialName()}
	}
	return nil
}

func fileCertificate(chain, key string) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{
		CertificateChain: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: chain}},
		PrivateKey:       &core.DataSource{Specifier: &core.DataSource_Filename{Filename: key}},
	}
}

// clientValidation verifies client certificates of a mutual server: the
// CA from caCertCredentialName, else the first credential's <name>-cacert
// secret (Envoy validates every certificate against one CA, as in
// Istio), else the caCertificates file; plus subjectAltNames,
// verifyCertificateSpki, verifyCertificateHash, caCrl and
// insecureSkipVerify. With no such extra check the SDS or file CA alone
// is the validation context.
func clientValidation(common *tlsv3.CommonTlsContext, t *networking.ServerTLSSettings) {
	extra := clientChecks(t)
	names := credentialNames(t)
	if len(names) == 0 {
		vc := extra
		if vc == nil {
			vc = &tlsv3.CertificateValidationContext{}
		}
		vc.TrustedCa = &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.GetCaCertificates()}}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		return
	}
	ca := CredentialPrefix + names[0] + "-cacert"
	if n := t.GetCaCertCredentialName(); n != "" {
		ca = CredentialPrefix + n
	}
	sds := &tlsv3.SdsSecretConfig{Name: ca, SdsConfig: adsSource()}
	if extra == nil {
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds}
		return
	}
	common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext: extra, ValidationContextSdsSecretConfig: sds,
	}}
}

// clientChecks holds the client-certificate checks beyond the CA, or nil
// when the server sets none.
func clientChecks(t *networking.ServerTLSSettings) *tlsv3.CertificateValidationContext {
	vc := &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: anySANType(t.GetSubjectAltNames()),
		VerifyCertificateSpki:     t.GetVerifyCertificateSpki(),
		VerifyCertificateHash:     t.GetVerifyCertificateHash(),
	}
	if crl := t.GetCaCrl(); crl != "" {
		vc.Crl = &core.DataSource{Specifier: &core.DataSource_Filename{Filename: crl}}
	}
	if t.GetInsecureSkipVerify().GetValue() {
		vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	}
	if len(vc.MatchTypedSubjectAltNames)+len(vc.VerifyCertificateSpki)+len(vc.VerifyCertificateHash) == 0 &&
		vc.Crl == nil && vc.TrustChainVerification == tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN {
		return nil
	}
	return vc
}

// anySANType matches each name exactly against a SAN of any type, as
// Istio's (deprecated) match_subject_alt_names does for gateways.
func anySANType(names []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	types := []tlsv3.SubjectAltNameMatcher_SanType{
		tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
		tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS,
	}
	for _, n := range names {
		for _, typ := range types {
			out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: typ, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: n}}})
		}
	}
	return out
}

// tlsParams applies the server's minProtocolVersion (default TLS 1.2),
// maxProtocolVersion (default: the proxy's, TLS 1.3), cipherSuites
// (Istio drops unknown and duplicate names, which validation reports as
// warnings) and ecdhCurves (validation rejects curves Envoy does not know,
// which would make it NACK the whole listener).
func tlsParams(t *networking.ServerTLSSettings) *tlsv3.TlsParameters {
	p := &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: DefaultGatewayMinTLS,
		CipherSuites:              filterCipherSuites(t.GetCipherSuites()),
		EcdhCurves:                t.GetEcdhCurves(),
	}
	if v := t.GetMinProtocolVersion(); v != networking.ServerTLSSettings_TLS_AUTO {
		p.TlsMinimumProtocolVersion = tlsProtocol(v)
	}
	if v := t.GetMaxProtocolVersion(); v != networking.ServerTLSSettings_TLS_AUTO {
		p.TlsMaximumProtocolVersion = tlsProtocol(v)
	}
	return p
}

func tlsProtocol(v networking.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	switch v {
	case networking.ServerTLSSettings_TLSV1_0:
		return tlsv3.TlsParameters_TLSv1_0
	case networking.ServerTLSSettings_TLSV1_1:
		return tlsv3.TlsParameters_TLSv1_1
	case networking.ServerTLSSettings_TLSV1_2:
		return tlsv3.TlsParameters_TLSv1_2
	case networking.ServerTLSSettings_TLSV1_3:
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLS_AUTO
}

// GatewayCipherSuites are the cipher suite names Envoy (BoringSSL) accepts
// in a gateway server's cipherSuites, as Istio lists them
// (security.ValidCipherSuites).
var GatewayCipherSuites = map[string]bool{
	"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-RSA-AES128-GCM-SHA256": true,
	"ECDHE-ECDSA-AES256-GCM-SHA384": true, "ECDHE-RSA-AES256-GCM-SHA384": true,
	"ECDHE-ECDSA-CHACHA20-POLY1305": true, "ECDHE-RSA-CHACHA20-POLY1305": true,
	"ECDHE-ECDSA-AES128-SHA": true, "ECDHE-RSA-AES128-SHA": true, "ECDHE-ECDSA-AES256-SHA": true,
	"ECDHE-RSA-AES256-SHA": true, "AES128-GCM-SHA256": true, "AES256-GCM-SHA384": true,
	"AES128-SHA": true, "AES256-SHA": true, "DES-CBC3-SHA": true,
}

// ValidCipherSuite is Istio's IsValidCipherSuite: a known name, "ALL", or
// an entry that starts with an OpenSSL operator ('!', '-', '+', '[').
func ValidCipherSuite(cs string) bool {
	if cs == "" {
		return false
	}
	if cs == "ALL" || !isAlnum(cs[0]) {
		return true
	}
	return GatewayCipherSuites[cs]
}

func isAlnum(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// filterCipherSuites is Istio's FilterCipherSuites: unknown names, which
// Envoy would NACK, and duplicates are dropped, order kept.
func filterCipherSuites(suites []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range suites {
		if ValidCipherSuite(s) && !seen[s] {
			out = append(out, s)
		}
		seen[s] = true
	}
	return out
}
