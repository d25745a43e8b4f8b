package translate

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// SDS secret names served by the agent (sidecars) and, for credentialName,
// by the gateway SDS server.
const (
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
	// CredentialPrefix prefixes a Gateway/DestinationRule credentialName.
	CredentialPrefix = "kubernetes://"
)

// grpc certificate-provider plugin instance names expected in the
// proxyless bootstrap (file_watcher plugin). Istio's agent writes one
// instance, "default", holding the certificate, key and roots, and its
// grpc generator names it for both; Ward does the same so that workloads
// bootstrapped by Istio's agent work unchanged.
const (
	GRPCIdentityInstance = "default"
	GRPCRootInstance     = "default"
)

const tlsSocketName = "envoy.transport_sockets.tls"

// upstreamTLS returns the cluster's transport socket: from the
// DestinationRule's tls settings, else from the UpstreamTLS hook (auto
// mTLS), else nil (plaintext).
func (g *gen) upstreamTLS(svc *mesh.Service, port mesh.Port, subset string, t *networking.ClientTLSSettings) *core.TransportSocket {
	if t == nil {
		if g.hooks.UpstreamTLS != nil {
			return g.hooks.UpstreamTLS(g.ix.snap, g.proxy, svc, port, subset)
		}
		return nil
	}
	var ctx *tlsv3.UpstreamTlsContext
	switch t.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
		return nil
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		sans := t.GetSubjectAltNames()
		if len(sans) == 0 {
			sans = g.serviceSANs(svc)
		}
		sni := t.GetSni()
		if sni == "" {
			sni = fmt.Sprintf("outbound_.%d_.%s_.%s", port.Number, subset, svc.Hostname)
		}
		ctx = IstioMutualUpstream(g.proxy.Type, sans, sni)
	default: // SIMPLE, MUTUAL
		ctx = fileUpstream(t)
	}
	return TransportSocket(ctx)
}

// TransportSocket wraps a TLS context into Envoy's tls transport socket.
func TransportSocket(ctx interface{ ProtoReflect() protoreflectMessage }) *core.TransportSocket {
	return &core.TransportSocket{Name: tlsSocketName, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// serviceSANs are the identities a service's workloads present: the
// ServiceEntry's subjectAltNames, else each member's SPIFFE identity.
func (g *gen) serviceSANs(svc *mesh.Service) []string {
	if len(svc.SubjectAltNames) > 0 {
		return svc.SubjectAltNames
	}
	td := g.ix.snap.Mesh().TrustDomain
	var out []string
	for _, w := range g.ix.snap.Members(svc) {
		out = append(out, w.Identity(td).String())
	}
	return sortedUnique(out)
}

// IstioMutualUpstream is the ISTIO_MUTUAL client context. Envoy gets its
// certificate and roots over SDS ("default", "ROOTCA"); proxyless gRPC
// gets them from certificate-provider instances named in its bootstrap.
// SANs are pinned both in the deprecated match_subject_alt_names (the
// only field grpc-go honours) and in the typed field (what Envoy prefers).
func IstioMutualUpstream(pt mesh.ProxyType, sans []string, sni string) *tlsv3.UpstreamTlsContext {
	vc := &tlsv3.CertificateValidationContext{}
	for _, s := range sans {
		m := &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, m) //nolint:staticcheck // grpc reads only this field
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m})
	}
	common := &tlsv3.CommonTlsContext{}
	if pt == mesh.ProxyGRPC {
		common.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCIdentityInstance, CertificateName: SecretDefault}
		vc.CaCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCRootInstance, CertificateName: SecretRootCA}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: sni}
	}
	common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: adsSource()}}
	common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext:         vc,
		ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: adsSource()},
	}}
	common.AlpnProtocols = []string{"istio-peer-exchange", "istio"}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: sni}
}

// fileUpstream is a SIMPLE or MUTUAL context from files or a credentialName.
func fileUpstream(t *networking.ClientTLSSettings) *tlsv3.UpstreamTlsContext {
	common := &tlsv3.CommonTlsContext{}
	vc := &tlsv3.CertificateValidationContext{}
	for _, s := range t.GetSubjectAltNames() {
		m := &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: m})
	}
	if ca := t.GetCaCertificates(); ca != "" {
		vc.TrustedCa = &core.DataSource{Specifier: &core.DataSource_Filename{Filename: ca}}
	}
	switch {
	case t.GetCredentialName() != "":
		name := CredentialPrefix + t.GetCredentialName()
		if t.GetMode() == networking.ClientTLSSettings_MUTUAL {
			common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: name, SdsConfig: adsSource()}}
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         vc,
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: name + "-cacert", SdsConfig: adsSource()},
		}}
	default:
		if t.GetMode() == networking.ClientTLSSettings_MUTUAL {
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.GetClientCertificate()}},
				PrivateKey:       &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.GetPrivateKey()}},
			}}
		}
		if !t.GetInsecureSkipVerify().GetValue() {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: t.GetSni()}
}
