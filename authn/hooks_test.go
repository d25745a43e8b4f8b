package authn

import (
	"testing"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func TestInboundVariants(t *testing.T) {
	se := &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "ns", Name: "svc", CreationTimestamp: t0}, Spec: serviceEntry("svc.ns", app)}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{se, pa("ns", "n", 0, nil, permissive, nil)})
	sidecar := &mesh.Proxy{Type: mesh.ProxySidecar, Namespace: "ns", Labels: mesh.Labels(app)}
	if p := PortProtocol(snap, sidecar, 8080); p != mesh.ProtocolHTTP {
		t.Fatalf("protocol of 8080 = %q", p)
	}
	vs, _ := InboundVariants(snap, sidecar, 8080, mesh.ProtocolHTTP)
	if len(vs) != 2 || vs[0].Kind != "mtls-http" || vs[0].TransportSocket == nil || vs[1].Kind != "plaintext-http" || vs[1].TransportSocket != nil {
		t.Fatalf("variants = %+v", vs)
	}
	for _, v := range vs {
		mustValidate(t, v.Match)
		if v.TransportSocket != nil {
			mustValidate(t, v.TransportSocket)
		}
	}
	grpc := &mesh.Proxy{Type: mesh.ProxyGRPC, Namespace: "ns", Labels: mesh.Labels(app)}
	gv, fs := InboundVariants(snap, grpc, 8080, mesh.ProtocolHTTP)
	if len(gv) != 1 || gv[0].Match != nil || gv[0].TransportSocket == nil || len(fs) != 1 || fs[0].Reason != ReasonGRPCPermissive {
		t.Fatalf("grpc variants = %+v findings %v", gv, fs)
	}
}

func TestFingerprintAndJWTFilters(t *testing.T) {
	proxy := &mesh.Proxy{Type: mesh.ProxySidecar, Namespace: "ns", Labels: mesh.Labels(app)}
	rule := &security.JWTRule{Issuer: "i", JwksUri: "https://i/keys"}
	base := []*mesh.Config{ra("ns", "jwt", nil, rule)}
	s1 := mesh.NewSnapshot(mesh.MeshConfig{}, base)
	s2 := mesh.NewSnapshot(mesh.MeshConfig{}, append(base, pa("ns", "n", 0, nil, strict, nil)))
	k1, k2 := staticKeys{}, staticKeys{"i|https://i/keys": FailClosedJWKS}
	if Fingerprint(s1, proxy, k1) == Fingerprint(s2, proxy, k1) {
		t.Error("fingerprint ignores a new PeerAuthentication")
	}
	if Fingerprint(s1, proxy, k1) == Fingerprint(s1, proxy, k2) {
		t.Error("fingerprint ignores fetched keys")
	}
	if Fingerprint(s1, proxy, k1) != Fingerprint(mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{ra("ns", "jwt", nil, rule)}), proxy, k1) {
		t.Error("fingerprint is not stable for equal input")
	}
	if fs := JWTFilters(s1, proxy, k2); len(fs) != 1 || fs[0].GetName() != JWTFilterName {
		t.Errorf("sidecar filters = %v", fs)
	}
	if fs := JWTFilters(s1, &mesh.Proxy{Type: mesh.ProxyGRPC, Namespace: "ns"}, k2); fs != nil {
		t.Errorf("proxyless gRPC must get no jwt_authn filter, got %v", fs)
	}
}
