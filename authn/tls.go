package authn

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// SDS secret names served by the agent, and the bootstrap cluster Envoy
// reaches it through.
const (
	SecretDefault  = "default" // the workload's certificate chain and key
	SecretRootCA   = "ROOTCA"  // the trust bundle
	SDSClusterName = "sds-grpc"
)

// Certificate-provider plugin instance names a proxyless gRPC bootstrap
// must define: one file_watcher instance "default" with the certificate,
// key and roots, as Istio's agent writes it (and Ward's agent too).
const (
	GRPCIdentityInstance = "default"
	GRPCRootInstance     = "default"
)

// Transport socket names.
const (
	TLSSocketName       = "envoy.transport_sockets.tls"
	RawBufferSocketName = "envoy.transport_sockets.raw_buffer"
)

// ALPN values. Istio's clients announce these when they originate mTLS, so
// a PERMISSIVE server can tell mesh mTLS from an application's own TLS.
var (
	// MTLSALPN is what Ward's outbound mTLS offers for opaque TCP.
	MTLSALPN = []string{"istio-peer-exchange", "istio"}
	// MTLSHTTPALPN is what Ward's outbound mTLS offers for HTTP.
	MTLSHTTPALPN = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// allMTLSALPN matches every mesh mTLS client.
	allMTLSALPN = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// serverHTTPALPN is negotiated by inbound HTTP mTLS chains.
	serverHTTPALPN = []string{"h2", "http/1.1"}
)

// Profile is a TLS compliance profile, MeshConfig.tlsProfile.
type Profile string

// Profiles.
const (
	// ProfileDefault: TLS 1.2–1.3, ECDHE with AEAD ciphers only.
	ProfileDefault Profile = ""
	// ProfileFIPS: TLS 1.2 only, ECDHE-(EC|RSA) with AES-GCM, P-256 only —
	// the FIPS 140-2 subset BoringSSL-FIPS Envoy builds accept.
	ProfileFIPS Profile = "fips"
)

var (
	defaultCiphers = []string{
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
	}
	fipsCiphers = []string{
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	}
)

// TLSParams returns the protocol versions, cipher suites and curves of a
// profile. An unknown profile is treated as FIPS: the stricter choice.
func TLSParams(p Profile) *tlsv3.TlsParameters {
	if p == ProfileDefault {
		return &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			CipherSuites:              append([]string(nil), defaultCiphers...),
		}
	}
	return &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		CipherSuites:              append([]string(nil), fipsCiphers...),
		EcdhCurves:                []string{"P-256"},
	}
}

// sdsSecret names a secret fetched from the agent over the sds-grpc cluster.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &core.ConfigSource{
		ResourceApiVersion:  core.ApiVersion_V3,
		InitialFetchTimeout: durationpb.New(0),
		ConfigSourceSpecifier: &core.ConfigSource_ApiConfigSource{ApiConfigSource: &core.ApiConfigSource{
			ApiType:                   core.ApiConfigSource_GRPC,
			TransportApiVersion:       core.ApiVersion_V3,
			SetNodeOnFirstMessageOnly: true,
			GrpcServices: []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: SDSClusterName}}}},
		}},
	}}
}

// trustDomainSANs matches any identity of the given trust domains:
// URI SAN prefix "spiffe://<td>/".
func trustDomainSANs(tds []string) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(tds))
	for _, td := range tds {
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}}})
	}
	return out
}

// ServerOptions configure an inbound mTLS context.
type ServerOptions struct {
	Profile Profile
	// TrustDomains are accepted peers' trust domains (own first, then
	// aliases); peers must present a URI SAN under one of them.
	TrustDomains []string
	// HTTP negotiates h2/http1.1 by ALPN; opaque TCP chains negotiate none.
	HTTP bool
}

// EnvoyServerTLS is the DownstreamTlsContext of an Envoy inbound mTLS
// chain: client certificate required, workload certificate and roots over
// SDS ("default", "ROOTCA" via the sds-grpc cluster), peer URI SAN within
// the trust domains, and the profile's TLS parameters.
func EnvoyServerTLS(o ServerOptions) *tlsv3.DownstreamTlsContext {
	common := &tlsv3.CommonTlsContext{
		TlsParams:                      TLSParams(o.Profile),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: trustDomainSANs(o.TrustDomains)},
			ValidationContextSdsSecretConfig: sdsSecret(SecretRootCA),
		}},
	}
	if o.HTTP {
		common.AlpnProtocols = append([]string(nil), serverHTTPALPN...)
	}
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext:                 common,
		RequireClientCertificate:         wrapperspb.Bool(true),
		SessionTicketKeysType:            &tlsv3.DownstreamTlsContext_DisableStatelessSessionResumption{DisableStatelessSessionResumption: true},
		DisableStatefulSessionResumption: true,
	}
}

// GRPCServerTLS is the DownstreamTlsContext for a proxyless gRPC server:
// client certificate required, identity and roots from the bootstrap's
// certificate-provider instances. grpc-go rejects tls_params and SAN
// matchers on servers, so neither the profile nor a trust-domain check can
// be expressed here: the peer is checked against the roots only (RBAC
// checks principals).
func GRPCServerTLS() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCIdentityInstance, CertificateName: SecretDefault},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCRootInstance, CertificateName: SecretRootCA},
			}},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}
}

// ClientOptions configure an outbound mTLS context.
type ClientOptions struct {
	Profile Profile
	// SANs are the exact SPIFFE IDs the server may present.
	SANs []string
	// SNI is sent to the server (outbound_.<port>_.<subset>_.<host>).
	SNI string
	// HTTP offers Istio's HTTP mTLS ALPNs instead of the TCP ones.
	HTTP bool
}

// EnvoyClientTLS is the UpstreamTlsContext an Envoy client uses to
// originate mesh mTLS.
func EnvoyClientTLS(o ClientOptions) *tlsv3.UpstreamTlsContext {
	alpn := MTLSALPN
	if o.HTTP {
		alpn = MTLSHTTPALPN
	}
	return &tlsv3.UpstreamTlsContext{Sni: o.SNI, CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams:                      TLSParams(o.Profile),
		AlpnProtocols:                  append([]string(nil), alpn...),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: exactURISANs(o.SANs)},
			ValidationContextSdsSecretConfig: sdsSecret(SecretRootCA),
		}},
	}}
}

// GRPCClientTLS is the UpstreamTlsContext a proxyless gRPC client uses.
// grpc-go reads only the deprecated match_subject_alt_names field.
func GRPCClientTLS(sans []string) *tlsv3.UpstreamTlsContext {
	vc := &tlsv3.CertificateValidationContext{
		CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCRootInstance, CertificateName: SecretRootCA},
	}
	for _, s := range sans {
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, //nolint:staticcheck // the only SAN field grpc-go honours
			&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}})
	}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCIdentityInstance, CertificateName: SecretDefault},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}}
}

func exactURISANs(sans []string) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(sans))
	for _, s := range sans {
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}})
	}
	return out
}

// SNI is the server name auto-mTLS sends, Istio's cluster-name form.
func SNI(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, host)
}

// TLSSocket wraps a Downstream- or UpstreamTlsContext in Envoy's tls
// transport socket.
func TLSSocket(ctx proto.Message) *core.TransportSocket {
	return &core.TransportSocket{Name: TLSSocketName, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// RawBufferSocket is the explicit plaintext transport socket.
func RawBufferSocket() *core.TransportSocket {
	return &core.TransportSocket{Name: RawBufferSocketName, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbuffer.RawBuffer{})}}
}

// mustAny packs m. Packing a message this package just built cannot fail
// short of a bug, which the tests would catch.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("authn: pack %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
	}
	return a
}

type anyType = anypb.Any

func inlineString(s string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}
}
