package mesh

import (
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

var testTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func se(ns, name string, created time.Time, spec *networking.ServiceEntry) *Config {
	return &Config{Meta: Meta{Kind: KindServiceEntry, Namespace: ns, Name: name, CreationTimestamp: created}, Spec: spec}
}

func we(ns, name string, spec *networking.WorkloadEntry) *Config {
	return &Config{Meta: Meta{Kind: KindWorkloadEntry, Namespace: ns, Name: name}, Spec: spec}
}

func fixture() []*Config {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return []*Config{
		se("shop", "cart", t0.Add(time.Hour), &networking.ServiceEntry{
			Hosts: []string{"cart.shop.svc.cluster.local"}, Resolution: networking.ServiceEntry_STATIC,
			Ports:            []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP", TargetPort: 8080}, {Number: 90, Name: "grpc-x"}},
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "cart"}},
		}),
		se("other", "cart", t0, &networking.ServiceEntry{Hosts: []string{"cart.shop.svc.cluster.local"}}),
		we("shop", "cart-1", &networking.WorkloadEntry{Address: "10.0.0.1", Labels: map[string]string{"app": "cart"}, Ports: map[string]uint32{"grpc-x": 9090}}),
		we("shop", "web-1", &networking.WorkloadEntry{Address: "10.0.0.2", Labels: map[string]string{"app": "web"}}),
		{Meta: Meta{Kind: KindPeerAuthentication, Namespace: "shop", Name: "default"}, Spec: &security.PeerAuthentication{}},
	}
}

func TestSnapshotIndexes(t *testing.T) {
	s := NewSnapshot(MeshConfig{}, fixture())
	if s.Mesh().TrustDomain != DefaultTrustDomain || s.Mesh().RootNamespace != DefaultRootNamespace {
		t.Errorf("mesh defaults not applied: %+v", s.Mesh())
	}
	hosts := s.ServicesByHost("cart.shop.svc.cluster.local")
	if len(hosts) != 2 || hosts[0].Namespace != "other" {
		t.Fatalf("ServicesByHost should list the oldest declaration first, got %v", hosts)
	}
	cart := hosts[1]
	members := s.Members(cart)
	if len(members) != 1 || members[0].Name != "cart-1" {
		t.Fatalf("cart members = %v, want cart-1 only", members)
	}
	http, _ := cart.PortByName("http")
	if http.Protocol != ProtocolHTTP {
		t.Errorf("http port protocol %q", http.Protocol)
	}
	if eps := s.Endpoints(cart, http); len(eps) != 1 || eps[0].Port != 8080 {
		t.Errorf("http endpoints %+v, want target port 8080", eps)
	}
	grpc, _ := cart.PortByName("grpc-x")
	if grpc.Protocol != ProtocolGRPC {
		t.Errorf("port name prefix grpc- should imply GRPC, got %q", grpc.Protocol)
	}
	if eps := s.Endpoints(cart, grpc); len(eps) != 1 || eps[0].Port != 9090 {
		t.Errorf("grpc endpoints %+v, want the workload's named port 9090", eps)
	}
	if got := len(s.InNamespace(KindWorkloadEntry, "shop")); got != 2 {
		t.Errorf("InNamespace = %d, want 2", got)
	}
	if svcs := s.ServicesForWorkload("shop", Labels{"app": "cart", "v": "1"}); len(svcs) != 1 {
		t.Errorf("ServicesForWorkload = %v", svcs)
	}
}

func TestSnapshotVersionIsContentHash(t *testing.T) {
	a := NewSnapshot(MeshConfig{}, fixture())
	b := NewSnapshot(MeshConfig{}, fixture())
	if a.Version() != b.Version() {
		t.Fatalf("equal content, different versions %s %s", a.Version(), b.Version())
	}
	changed := fixture()
	changed[2].Spec.(*networking.WorkloadEntry).Address = "10.0.0.9"
	if c := NewSnapshot(MeshConfig{}, changed); c.Version() == a.Version() {
		t.Fatal("changed spec kept the same version")
	}
	if c := NewSnapshot(MeshConfig{TrustDomain: "example.org"}, fixture()); c.Version() == a.Version() {
		t.Fatal("changed mesh config kept the same version")
	}
}

func TestIdentity(t *testing.T) {
	id := Identity{TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "cart"}
	sid, err := id.SPIFFEID()
	if err != nil || sid.String() != "spiffe://cluster.local/ns/shop/sa/cart" {
		t.Fatalf("SPIFFEID = %v, %v", sid, err)
	}
	back, err := ParseIdentity(sid.String())
	if err != nil || back != id {
		t.Fatalf("ParseIdentity = %+v, %v", back, err)
	}
	if id.Principal() != "cluster.local/ns/shop/sa/cart" {
		t.Errorf("Principal = %q", id.Principal())
	}
	for _, bad := range []string{"spiffe://cluster.local/ns/shop", "spiffe://cluster.local/x/shop/sa/cart", "http://x/ns/a/sa/b", "spiffe://cluster.local/ns//sa/x"} {
		if _, err := ParseIdentity(bad); err == nil {
			t.Errorf("ParseIdentity(%q) accepted", bad)
		}
	}
}

func TestSelector(t *testing.T) {
	if !(Selector{}).Matches(Labels{"a": "b"}) {
		t.Error("empty selector must match everything")
	}
	if (Selector{"a": "b"}).Matches(Labels{"a": "c"}) || !(Selector{"a": "b"}).Matches(Labels{"a": "b", "x": "y"}) {
		t.Error("selector equality matching is wrong")
	}
}
