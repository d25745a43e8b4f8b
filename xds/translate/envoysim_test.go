package translate_test

import (
	gotls "crypto/tls"
	"strconv"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// Behaviour tests of the translator's output, after Istio's simulation
// tests: a described call runs through xds/simulate (Envoy's listener,
// filter-chain, HCM and route semantics) and the test asserts which
// listener, filter chain, virtual host, route and cluster it reached.
// shortnames_test.go and vshosts_test.go use the helpers here.

func envoySim(t *testing.T, r *translate.Resources) *simulate.Simulator {
	t.Helper()
	return simulate.New(simulate.Config{Resources: simulate.Resources{Listeners: r.Listeners, Routes: r.Routes, Clusters: r.Clusters}})
}

// outbound is an application's plaintext HTTP call captured by its
// sidecar.
func simOutbound(port uint32, authority, path string, headers map[string]string) simulate.Request {
	return simulate.Request{Capture: simulate.Outbound, SrcIP: "10.0.3.1", SrcPort: 40000, DstIP: "10.255.0.1", DstPort: port,
		Protocol: simulate.HTTP1, Method: "GET", Path: path, Host: authority, Headers: headers}
}

func simOutboundTCP(ip string, port uint32) simulate.Request {
	return simulate.Request{Capture: simulate.Outbound, SrcIP: "10.0.3.1", SrcPort: 40000, DstIP: ip, DstPort: port}
}

func simInbound(port uint32) simulate.Request {
	return simulate.Request{Capture: simulate.Inbound, SrcIP: "10.9.9.9", SrcPort: 40000, DstIP: "10.0.3.1", DstPort: port}
}

// destination summarises where a request went.
func simDestination(r *simulate.Result) string {
	switch r.Verdict {
	case simulate.NoRoute:
		return "no route"
	case simulate.Redirected:
		_, rest, _ := strings.Cut(r.Location, "://")
		return "redirect " + rest[strings.IndexByte(rest, '/'):]
	case simulate.DirectResponse:
		return "direct " + strconv.Itoa(r.Status)
	}
	if len(r.Weighted) > 0 {
		parts := make([]string, len(r.Weighted))
		for i, w := range r.Weighted {
			parts[i] = w.Name + "=" + strconv.FormatUint(uint64(w.Weight), 10)
		}
		return strings.Join(parts, ",")
	}
	return r.Cluster
}

func TestEnvoySimSidecarHTTP(t *testing.T) {
	sim := envoySim(t, generate(t, load(t, "sidecar"), goldenCases[0].proxy))
	const reviews = "reviews.bookinfo.svc.cluster.local"
	cases := []struct {
		name string
		req  simulate.Request
		want string
	}{
		{"testers with every match condition", simOutbound(9080, reviews, "/API/x?debug=1", map[string]string{"x-user-group": "testers"}), "outbound|9080|v2|" + reviews},
		{"withoutHeaders excludes canaries", simOutbound(9080, reviews, "/api/x?debug=1", map[string]string{"x-user-group": "testers", "x-canary": "1"}), "outbound|9080|v1|" + reviews + "=80,outbound|9080|v2|" + reviews + "=20"},
		{"query param required", simOutbound(9080, reviews+":9080", "/api/x", map[string]string{"x-user-group": "testers"}), "outbound|9080|v1|" + reviews + "=80,outbound|9080|v2|" + reviews + "=20"},
		{"exact path redirect", simOutbound(9080, reviews, "/old", nil), "redirect /new"},
		{"regex direct response", simOutbound(9080, reviews, "/teapot", nil), "direct 418"},
		{"delegate child route", simOutbound(9080, "ratings.bookinfo.svc.cluster.local", "/v1/stars/5", nil), "outbound|9080||ratings.bookinfo.svc.cluster.local"},
		{"outside the delegating prefix", simOutbound(9080, "ratings.bookinfo.svc.cluster.local", "/v2/stars", nil), "no route"},
		{"no VirtualService: default route", simOutbound(9080, "productpage.bookinfo.svc.cluster.local", "/", nil), "outbound|9080||productpage.bookinfo.svc.cluster.local"},
		{"REGISTRY_ONLY blocks unknown hosts", simOutbound(9080, "evil.example.com", "/", nil), "direct 502"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := sim.Run(tc.req)
			if res.Listener != "0.0.0.0_9080" {
				t.Errorf("reached listener %q, want 0.0.0.0_9080", res.Listener)
			}
			if got := simDestination(res); got != tc.want {
				t.Errorf("got %s, want %s\n%s", got, tc.want, strings.Join(res.Trace, "\n"))
			}
		})
	}
	r := sim.Run(simOutbound(9080, "ratings.bookinfo.svc.cluster.local", "/v1/other", nil)).RouteEntry
	if rw := r.GetRoute().GetRegexRewrite(); rw.GetSubstitution() != `/\1` {
		t.Errorf("delegate rewrite not applied: %v", rw)
	}
	r = sim.Run(simOutbound(9080, reviews, "/", nil)).RouteEntry
	if r.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration().AsDuration().String() != "2s" || r.GetRoute().GetTimeout().AsDuration().String() != "2s" {
		t.Errorf("canary timeout not on both timeout and max_stream_duration: %v", r.GetRoute())
	}
	if _, ok := r.GetTypedPerFilterConfig()[translate.FilterFault]; !ok {
		t.Errorf("canary fault not scoped to its route")
	}
}

func TestEnvoySimSidecarListeners(t *testing.T) {
	sim := envoySim(t, generate(t, load(t, "sidecar"), goldenCases[0].proxy))
	if res := sim.Run(simInbound(9081)); res.Chain != "inbound|9081||" || res.Listener != translate.VirtualInbound {
		t.Errorf("inbound to the workload port matched %s", res)
	}
	if res := sim.Run(simInbound(1234)); res.Chain != "virtualInbound-catchall" {
		t.Errorf("inbound to an unknown port matched %s", res)
	}
	if res := sim.Run(simOutboundTCP("10.255.0.9", 5555)); res.Listener != translate.VirtualOutbound || res.Cluster != translate.BlackHoleCluster {
		t.Errorf("REGISTRY_ONLY catch-all: %s", res)
	}
}

func TestEnvoySimTCPAndTLS(t *testing.T) {
	res := generate(t, load(t, "tcp"), goldenCases[4].proxy)
	sim := envoySim(t, res)
	db := sim.Run(simOutboundTCP("240.0.0.10", 5432))
	if db.Listener != "240.0.0.10_5432" || simDestination(db) != "outbound|5432|primary|db.data.svc.cluster.local=70,outbound|5432|replica|db.data.svc.cluster.local=30" {
		t.Errorf("tcp weights: %s %v", db, db.Weighted)
	}
	ext := simOutboundTCP("203.0.113.1", 443)
	ext.TLS, ext.SNI = true, "api.example.com"
	if r := sim.Run(ext); r.Listener != "0.0.0.0_443" || r.Cluster != "outbound|443||api.example.com" {
		t.Errorf("sni api.example.com → %s", r)
	}
	if r := sim.Run(simOutboundTCP("203.0.113.1", 1)); r.Listener != translate.VirtualOutbound || r.Cluster != translate.PassthroughCluster {
		t.Errorf("ALLOW_ANY catch-all is not PassthroughCluster: %s", r)
	}
	if r := sim.Run(simInbound(18080)); r.Chain != "inbound|18080||" {
		t.Errorf("workload's named port 18080 matched %s", r)
	}
	if r := sim.Run(simInbound(9000)); r.Cluster != "inbound|9000||" {
		t.Errorf("tcp inbound 9000 matched %s", r)
	}
	for _, c := range res.Clusters {
		if strings.Contains(c.GetName(), "mirror.example.org") && c.GetType().String() != "STRICT_DNS" {
			t.Errorf("DNS service cluster type %v", c.GetType())
		}
	}
}

// gatewayCall is a client's call to the ingress gateway at 10.0.0.10.
func simGatewayCall(port uint32, sni, host, path string) simulate.Request {
	r := simulate.Request{SrcIP: "203.0.113.7", SrcPort: 50000, DstIP: "10.0.0.10", DstPort: port, TLS: sni != "", SNI: sni}
	if host != "" {
		r.Protocol, r.Method, r.Path, r.Host = simulate.HTTP1, "GET", path, host
	}
	return r
}

func simDownstreamTLS(t *testing.T, fc *listener.FilterChain) *tlsv3.DownstreamTlsContext {
	t.Helper()
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestEnvoySimGateway(t *testing.T) {
	sim := envoySim(t, generate(t, load(t, "gateway"), goldenCases[3].proxy))
	shop := sim.Run(simGatewayCall(443, "shop.example.com", "shop.example.com", "/cart"))
	if n := simDownstreamTLS(t, shop.FilterChain).GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName(); n != "kubernetes://shop-cert" {
		t.Errorf("shop certificate from %q", n)
	}
	if simDestination(shop) != "outbound|8080||web.shop.svc.cluster.local" {
		t.Errorf("https shop.example.com → %s", shop)
	}
	partners := simGatewayCall(443, "partners.example.com", "", "")
	if r := sim.Run(partners); r.Verdict != simulate.TLSFailed {
		t.Errorf("MUTUAL server accepted a client without a certificate: %s", r)
	}
	partners.PeerDNSSANs = []string{"client.partners.example.com"}
	pctx := simDownstreamTLS(t, sim.Run(partners).FilterChain)
	if !pctx.GetRequireClientCertificate().GetValue() || pctx.GetCommonTlsContext().GetValidationContextSdsSecretConfig().GetName() != "kubernetes://partners-cert-cacert" {
		t.Errorf("MUTUAL server does not require a client certificate validated by partners-cert-cacert: %v", pctx)
	}
	if r := sim.Run(simGatewayCall(8443, "db.example.com", "", "")); r.Cluster != "outbound|8443||db.shop.svc.cluster.local" {
		t.Errorf("passthrough db.example.com → %s", r)
	}
	if r := sim.Run(simGatewayCall(8443, "other.example.com", "", "")); r.Verdict != simulate.NoChain {
		t.Errorf("passthrough accepted an unknown SNI: %s", r)
	}
	if r := sim.Run(simGatewayCall(80, "", "shop.example.com", "/")); r.Verdict != simulate.Redirected || r.Status != 301 || !strings.HasPrefix(r.Location, "https://") {
		t.Errorf("httpsRedirect not applied: %s", r)
	}
	if r := sim.Run(simGatewayCall(5432, "", "", "")); r.Cluster != "outbound|5432||db.shop.svc.cluster.local" {
		t.Errorf("gateway tcp → %s", r)
	}
}

func TestEnvoySimGRPC(t *testing.T) {
	snap := load(t, "grpc")
	client := generate(t, snap, goldenCases[1].proxy)
	call := simulate.Request{Capture: simulate.API, Target: "echo.test.svc.cluster.local:7070", Protocol: simulate.GRPC,
		Path: "/grpc.testing.TestService/UnaryCall", Host: "echo.test.svc.cluster.local:7070", Headers: map[string]string{"x-user": "alice"}}
	if r := envoySim(t, client).Run(call); r.RouteConfig != "echo.test.svc.cluster.local:7070" || simDestination(r) != "outbound|7070|v2|echo.test.svc.cluster.local" {
		t.Errorf("alice → %s", r)
	}
	server := generate(t, snap, goldenCases[2].proxy)
	in := simulate.Request{DstIP: "127.0.0.1", DstPort: 17070, SrcIP: "127.0.0.2", Protocol: simulate.GRPC, Path: "/grpc.testing.TestService/UnaryCall", Host: "echo"}
	r := envoySim(t, server).Run(in)
	// The listener bound to exactly 127.0.0.1:17070 wins over a wildcard.
	if r.Listener != translate.GRPCServerListenerName("127.0.0.1", 17070) {
		t.Errorf("a call to 127.0.0.1:17070 reached listener %q", r.Listener)
	}
	if r.Verdict != simulate.Allowed || r.Reason != "non_forwarding_action" {
		t.Errorf("server route is not NonForwardingAction: %s", r)
	}
	for _, c := range client.Clusters {
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatal(err)
		}
		vc := ctx.GetCommonTlsContext().GetValidationContext()
		//nolint:staticcheck // grpc reads only the deprecated field
		if len(vc.GetMatchSubjectAltNames()) != 1 || len(vc.GetMatchTypedSubjectAltNames()) != 1 || vc.GetCaCertificateProviderInstance().GetInstanceName() != translate.GRPCRootInstance {
			t.Errorf("cluster %s: SAN pinning must use both fields and the rootca provider: %v", c.GetName(), vc)
		}
	}
}

// TestEnvoySimGatewayTLSSettings: the server TLS settings of a Gateway
// decide which handshakes succeed (they used to be validated and then
// ignored, leaving every server at the proxy's defaults).
func TestEnvoySimGatewayTLSSettings(t *testing.T) {
	sim := envoySim(t, generate(t, load(t, "gateway"), goldenCases[3].proxy))
	call := func(port uint32, sni string, version uint16, ciphers []string, san string) simulate.Request {
		r := simGatewayCall(port, sni, "", "")
		r.TLSVersion, r.CipherSuites = version, ciphers
		if san != "" {
			r.PeerDNSSANs = []string{san}
		}
		return r
	}
	const partnerSAN = "client.partners.example.com"
	cases := []struct {
		name   string
		req    simulate.Request
		reason string // "" = the handshake succeeds
	}{
		{"default server: TLS 1.2 floor", call(443, "shop.example.com", gotls.VersionTLS11, nil, ""), "tls_version_rejected"},
		{"default server: TLS 1.2", call(443, "shop.example.com", gotls.VersionTLS12, nil, ""), ""},
		{"default server: TLS 1.3", call(443, "shop.example.com", 0, nil, ""), ""},
		{"minProtocolVersion TLSV1_3 rejects TLS 1.2", call(9443, "hardened.example.com", gotls.VersionTLS12, nil, partnerSAN), "tls_version_rejected"},
		{"minProtocolVersion TLSV1_3 accepts TLS 1.3", call(9443, "hardened.example.com", 0, nil, partnerSAN), ""},
		{"subjectAltNames rejects another client", call(9443, "hardened.example.com", 0, nil, "client.other.example.com"), "client_certificate_san_rejected"},
		{"MUTUAL requires a client certificate", call(9443, "hardened.example.com", 0, nil, ""), "client_certificate_required"},
		{"maxProtocolVersion TLSV1_2 rejects TLS 1.3", call(9444, "files.example.com", 0, nil, ""), "tls_version_rejected"},
		{"cipherSuites: no shared suite", call(9444, "files.example.com", gotls.VersionTLS12, []string{"ECDHE-RSA-AES128-GCM-SHA256"}, ""), "no_shared_cipher"},
		{"cipherSuites: a listed suite", call(9444, "files.example.com", gotls.VersionTLS12, []string{"ECDHE-RSA-AES256-GCM-SHA384"}, ""), ""},
		{"cipherSuites: an unknown name is dropped", call(9444, "files.example.com", gotls.VersionTLS12, []string{"NOT-A-CIPHER"}, ""), "no_shared_cipher"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sim.Run(tc.req)
			failed := r.Verdict == simulate.TLSFailed
			if failed != (tc.reason != "") || (failed && r.Reason != tc.reason) {
				t.Errorf("%s (reason %q), want handshake failure %q\n%s", r, r.Reason, tc.reason, strings.Join(r.Trace, "\n"))
			}
		})
	}
	hardened := simDownstreamTLS(t, sim.Run(call(9443, "hardened.example.com", 0, nil, partnerSAN)).FilterChain).GetCommonTlsContext()
	if got := hardened.GetTlsParams().GetEcdhCurves(); strings.Join(got, ",") != "X25519,P-256" {
		t.Errorf("ecdhCurves = %v", got)
	}
	if n := len(hardened.GetTlsCertificateSdsSecretConfigs()); n != 2 {
		t.Errorf("credentialNames: %d SDS certificates, want 2", n)
	}
}
