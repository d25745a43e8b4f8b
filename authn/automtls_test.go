package authn

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

var meshLabels = map[string]string{"app": "a", mesh.LabelTLSMode: "istio"}

func autoSnap(extra ...*mesh.Config) (*mesh.Snapshot, *mesh.Service) {
	cfgs := append([]*mesh.Config{
		{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "ns", Name: "svc", CreationTimestamp: t0}, Spec: serviceEntry("svc.ns", app)},
	}, extra...)
	snap := mesh.NewSnapshot(mesh.MeshConfig{TrustDomain: "td.example"}, cfgs)
	return snap, snap.ServicesByHost("svc.ns")[0]
}

func TestOutboundTLS(t *testing.T) {
	withID := weConfig("ns", "w-id", "10.0.0.1", meshLabels)
	withID2 := weConfig("ns", "w-id2", "10.0.0.2", meshLabels)
	noID := weConfig("ns", "w-plain", "10.0.0.3", app)
	disabled := pa("ns", "off", 0, nil, disable, nil)
	portOff := pa("ns", "port-off", 0, app, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: disable})
	envoy := &mesh.Proxy{Type: mesh.ProxySidecar, Namespace: "client"}
	grpc := &mesh.Proxy{Type: mesh.ProxyGRPC, Namespace: "client"}
	http := mesh.Port{Name: "http", Number: 80, Protocol: mesh.ProtocolHTTP, TargetPort: 8080}
	tcp := mesh.Port{Name: "db", Number: 5432, Protocol: mesh.ProtocolTCP}
	type want int
	const (
		plaintext want = iota
		single
		matches
		user
	)
	cases := []struct {
		name     string
		cfgs     []*mesh.Config
		proxy    *mesh.Proxy
		port     mesh.Port
		dr       *networking.ClientTLSSettings
		want     want
		findings int
	}{
		{name: "all endpoints with identity", cfgs: []*mesh.Config{withID, withID2}, proxy: envoy, port: http, want: single},
		{name: "no endpoint with identity", cfgs: []*mesh.Config{noID}, proxy: envoy, port: http, want: plaintext},
		{name: "mixed endpoints on envoy", cfgs: []*mesh.Config{withID, noID}, proxy: envoy, port: http, want: matches},
		{name: "mixed endpoints on grpc", cfgs: []*mesh.Config{withID, noID}, proxy: grpc, port: http, want: plaintext, findings: 1},
		{name: "all with identity on grpc", cfgs: []*mesh.Config{withID}, proxy: grpc, port: http, want: single},
		{name: "destination DISABLE", cfgs: []*mesh.Config{withID, disabled}, proxy: envoy, port: http, want: plaintext},
		{name: "destination port-level DISABLE on the target port", cfgs: []*mesh.Config{withID, portOff}, proxy: envoy, port: http, want: plaintext},
		{name: "port-level DISABLE does not touch other ports", cfgs: []*mesh.Config{withID, portOff}, proxy: envoy, port: tcp, want: single},
		{name: "DR DISABLE overrides", cfgs: []*mesh.Config{withID}, proxy: envoy, port: http, dr: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_DISABLE}, want: plaintext},
		{name: "DR ISTIO_MUTUAL overrides", cfgs: []*mesh.Config{noID}, proxy: envoy, port: http, dr: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL}, want: single},
		{name: "DR SIMPLE is user TLS", cfgs: []*mesh.Config{withID}, proxy: envoy, port: http, dr: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_SIMPLE}, want: user},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap, svc := autoSnap(tc.cfgs...)
			got := OutboundTLS(snap, tc.proxy, svc, tc.port, "v1", tc.dr)
			var kind want
			switch {
			case got.UserTLS:
				kind = user
			case got.TransportSocket != nil:
				kind = single
				mustValidate(t, got.TransportSocket)
			case got.TransportSocketMatches != nil:
				kind = matches
				mustValidate(t, &cluster.Cluster{Name: "c", TransportSocketMatches: got.TransportSocketMatches})
			}
			if kind != tc.want {
				t.Fatalf("got %+v, want kind %d", got, tc.want)
			}
			if len(got.Findings) != tc.findings {
				t.Errorf("findings = %v", got.Findings)
			}
		})
	}
}

func TestOutboundTLSSocketContents(t *testing.T) {
	snap, svc := autoSnap(weConfig("ns", "w-id", "10.0.0.1", meshLabels), weConfig("ns", "w-plain", "10.0.0.3", app))
	port := mesh.Port{Name: "http", Number: 80, Protocol: mesh.ProtocolHTTP, TargetPort: 8080}
	up := OutboundTLS(snap, &mesh.Proxy{Type: mesh.ProxySidecar}, svc, port, "v1", nil)
	c := &cluster.Cluster{Name: "outbound|80|v1|svc.ns", TransportSocketMatches: up.TransportSocketMatches}
	mustValidate(t, c)
	golden(t, "automtls-mixed-cluster", c)
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := up.TransportSocketMatches[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.GetSni() != "outbound_.80_.v1_.svc.ns" {
		t.Errorf("sni = %q", ctx.GetSni())
	}
	sans := ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	want := []string{"spiffe://td.example/ns/ns/sa/w-id", "spiffe://td.example/ns/ns/sa/w-plain"}
	if len(sans) != 2 || sans[0].GetMatcher().GetExact() != want[0] || sans[1].GetMatcher().GetExact() != want[1] {
		t.Errorf("SANs = %v, want %v", sans, want)
	}
	for _, ep := range snap.Endpoints(svc, port) {
		md := EndpointMetadata(EndpointMTLS(snap, ep))
		if (ep.Workload.Name == "w-id") != (md != nil) {
			t.Errorf("endpoint %s metadata = %v", ep.Workload.Name, md)
		}
	}
	if s := UpstreamTLSHook(snap, &mesh.Proxy{Type: mesh.ProxySidecar}, svc, port, "v1"); s != nil {
		t.Error("the narrow hook must return nil for a mixed Envoy cluster")
	}
}

func TestAutoMTLSOff(t *testing.T) {
	off := false
	snap := mesh.NewSnapshot(mesh.MeshConfig{EnableAutoMTLS: &off}, []*mesh.Config{
		weConfig("ns", "w-id", "10.0.0.1", meshLabels),
		{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "ns", Name: "svc", CreationTimestamp: t0}, Spec: serviceEntry("svc.ns", app)},
	})
	svc := snap.ServicesByHost("svc.ns")[0]
	if up := OutboundTLS(snap, &mesh.Proxy{Type: mesh.ProxySidecar}, svc, svc.Ports[0], "", nil); up.TransportSocket != nil || up.TransportSocketMatches != nil {
		t.Errorf("auto-mTLS off must originate plaintext, got %+v", up)
	}
}

func TestAutoMTLSSkipsMeshExternal(t *testing.T) {
	se := serviceEntry("ext.example", app)
	se.Location = networking.ServiceEntry_MESH_EXTERNAL
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{
		weConfig("ns", "w-id", "10.0.0.1", meshLabels),
		{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "ns", Name: "ext", CreationTimestamp: t0}, Spec: se},
	})
	svc := snap.ServicesByHost("ext.example")[0]
	if up := OutboundTLS(snap, &mesh.Proxy{Type: mesh.ProxySidecar}, svc, svc.Ports[0], "", nil); up.TransportSocket != nil || up.TransportSocketMatches != nil {
		t.Errorf("mesh-external service got auto-mTLS: %+v", up)
	}
}
