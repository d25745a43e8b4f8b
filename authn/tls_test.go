package authn

import (
	"slices"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func TestValidateDeepChecksPackedAny(t *testing.T) {
	bad := &listener.FilterChain{Filters: []*listener.Filter{{Name: "x", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxy.TcpProxy{})}}}}
	if err := validateDeep(bad); err == nil {
		t.Fatal("a packed TcpProxy without stat_prefix must fail deep validation")
	}
}

func TestFIPSProfileOnEveryContext(t *testing.T) {
	check := func(name string, p *tlsv3.TlsParameters) {
		t.Helper()
		if p.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_2 || p.GetTlsMaximumProtocolVersion() != tlsv3.TlsParameters_TLSv1_2 {
			t.Errorf("%s: versions %v–%v, want TLS 1.2 only", name, p.GetTlsMinimumProtocolVersion(), p.GetTlsMaximumProtocolVersion())
		}
		for _, c := range p.GetCipherSuites() {
			if !strings.HasPrefix(c, "ECDHE-") || !strings.Contains(c, "-GCM-") {
				t.Errorf("%s: cipher %s is not ECDHE-GCM", name, c)
			}
		}
		if !slices.Equal(p.GetEcdhCurves(), []string{"P-256"}) {
			t.Errorf("%s: curves %v, want [P-256]", name, p.GetEcdhCurves())
		}
	}
	srv := EnvoyServerTLS(ServerOptions{Profile: ProfileFIPS, TrustDomains: []string{"td"}})
	mustValidate(t, srv)
	check("server", srv.GetCommonTlsContext().GetTlsParams())
	cli := EnvoyClientTLS(ClientOptions{Profile: ProfileFIPS, SANs: []string{"spiffe://td/ns/a/sa/b"}, SNI: SNI(80, "", "a.example")})
	mustValidate(t, cli)
	check("client", cli.GetCommonTlsContext().GetTlsParams())
	check("unknown profile falls back to fips", TLSParams("something-else"))
	l := virtualInbound(t, map[uint32]Mode{8080: ModePermissive}, mesh.ProtocolUnknown)
	for _, fc := range l.FilterChains {
		if fc.GetTransportSocket() == nil {
			continue
		}
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatal(err)
		}
		if ctx.GetCommonTlsContext().GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_2 {
			t.Errorf("chain %s has no TLS 1.2 floor", fc.GetName())
		}
	}
	def := TLSParams(ProfileDefault)
	if def.GetTlsMaximumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || len(def.GetEcdhCurves()) != 0 {
		t.Errorf("default profile = %v", def)
	}
}

func TestGRPCInbound(t *testing.T) {
	snap := func(mode security.PeerAuthentication_MutualTLS_Mode) *mesh.Snapshot {
		return mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{pa("ns", "default", 0, nil, mode, nil)})
	}
	cases := []struct {
		name    string
		mode    security.PeerAuthentication_MutualTLS_Mode
		profile Profile
		want    Mode
		reasons []Reason
	}{
		{name: "strict", mode: strict, want: ModeStrict},
		{name: "disable", mode: disable, want: ModeDisable},
		{name: "permissive", mode: permissive, want: ModeStrict, reasons: []Reason{ReasonGRPCPermissive}},
		{name: "strict-fips", mode: strict, profile: ProfileFIPS, want: ModeStrict, reasons: []Reason{ReasonGRPCProfile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := PeerPolicyFor(snap(tc.mode), "ns", nil)
			got := GRPCInboundChain(pol, 50051, testHCM(50051), tc.profile)
			mustValidate(t, got.Chain)
			golden(t, "grpc-inbound-"+tc.name, got.Chain)
			if got.Mode != tc.want {
				t.Errorf("mode = %s, want %s", got.Mode, tc.want)
			}
			var reasons []Reason
			for _, f := range got.Findings {
				reasons = append(reasons, f.Reason)
				if f.Object.Name != "default" {
					t.Errorf("finding names %v, want the deciding policy ns/default", f.Object)
				}
			}
			if !slices.Equal(reasons, tc.reasons) {
				t.Errorf("reasons = %v, want %v", reasons, tc.reasons)
			}
			if got.Chain.GetFilterChainMatch() != nil {
				t.Error("grpc-go drops chains with a filter_chain_match on port/transport/ALPN; emit none")
			}
			ts := got.Chain.GetTransportSocket()
			if (tc.want == ModeStrict) != (ts != nil) {
				t.Fatalf("transport socket = %v for mode %s", ts, tc.want)
			}
			if ts != nil {
				ctx := &tlsv3.DownstreamTlsContext{}
				if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
					t.Fatal(err)
				}
				if !ctx.GetRequireClientCertificate().GetValue() || ctx.GetCommonTlsContext().GetTlsParams() != nil {
					t.Errorf("grpc context must require client certs and carry no tls_params: %v", ctx)
				}
			}
		})
	}
}
