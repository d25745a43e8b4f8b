package translate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh"
)

func TestAltHosts(t *testing.T) {
	cases := []struct {
		host, ns string
		want     []string
	}{
		{"reviews.bookinfo.svc.cluster.local", "bookinfo", []string{"reviews", "reviews.bookinfo.svc", "reviews.bookinfo"}},
		{"reviews.bookinfo.svc.cluster.local", "other", []string{"reviews.bookinfo", "reviews.bookinfo.svc"}},
		{"reviews.bookinfo.svc.cluster.local", "", []string{"reviews.bookinfo", "reviews.bookinfo.svc"}},
		{"a.b.ns.svc.cluster.local", "ns", []string{"a.b.ns", "a.b.ns.svc"}},
		{"api.example.com", "bookinfo", nil},
		{"reviews.bookinfo", "bookinfo", nil},
		{"svc.cluster.local", "bookinfo", nil},
		{".ns.svc.cluster.local", "ns", nil},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, altHosts(tc.host, tc.ns)); diff != "" {
			t.Errorf("altHosts(%q, %q) (-want +got):\n%s", tc.host, tc.ns, diff)
		}
	}
}

func TestServiceAltDomains(t *testing.T) {
	svc := &mesh.Service{Hostname: "reviews.bookinfo.svc.cluster.local", Addresses: []string{"10.96.0.10", "fd00::10", "10.0.0.0/16", "0.0.0.0"}}
	want := []string{
		"reviews.bookinfo", "reviews.bookinfo:9080", "reviews.bookinfo.svc", "reviews.bookinfo.svc:9080",
		"10.96.0.10", "10.96.0.10:9080", "[fd00::10]", "[fd00::10]:9080",
	}
	if diff := cmp.Diff(want, serviceAltDomains(svc, 9080, "other")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
