package mesh

import (
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

func TestProxyServices(t *testing.T) {
	s := NewSnapshot(MeshConfig{}, append(fixture(),
		se("shop", "inline", testTime, &networking.ServiceEntry{
			Hosts: []string{"inline.example.com"}, Resolution: networking.ServiceEntry_STATIC,
			Ports:     []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
			Endpoints: []*networking.WorkloadEntry{{Address: "10.0.0.7"}, {Address: "10.0.0.8", ServiceAccount: "pay"}},
		}),
	))
	hosts := func(svcs []*Service) []string {
		var out []string
		for _, svc := range svcs {
			out = append(out, svc.Hostname)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		p       Proxy
		want    []string
		refused int
	}{
		{"labels", Proxy{Namespace: "shop", Labels: Labels{"app": "cart"}}, []string{"cart.shop.svc.cluster.local"}, 0},
		{"selected workload entry by IP, default account", Proxy{Namespace: "shop", IPs: []string{"10.0.0.1"}}, []string{"cart.shop.svc.cluster.local"}, 0},
		{"labels and IP: once", Proxy{Namespace: "shop", Labels: Labels{"app": "cart"}, IPs: []string{"10.0.0.1"}}, []string{"cart.shop.svc.cluster.local"}, 0},
		{"inline endpoint, default account", Proxy{Namespace: "shop", IPs: []string{"10.0.0.7"}}, []string{"inline.example.com"}, 0},
		{"inline endpoint, its account", Proxy{Namespace: "shop", ServiceAccount: "pay", IPs: []string{"10.0.0.8"}}, []string{"inline.example.com"}, 0},
		{"inline endpoint, another account", Proxy{Namespace: "shop", ServiceAccount: "mallory", IPs: []string{"10.0.0.8"}}, nil, 1},
		{"inline endpoint, default account at pay's address", Proxy{Namespace: "shop", IPs: []string{"10.0.0.8"}}, nil, 1},
		{"another namespace", Proxy{Namespace: "other", IPs: []string{"10.0.0.7"}}, nil, 0},
		{"workload entry selected by no service", Proxy{Namespace: "shop", IPs: []string{"10.0.0.2"}}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, refused := s.ProxyServices(&tc.p)
			if g := hosts(got); len(g) != len(tc.want) || (len(g) > 0 && g[0] != tc.want[0]) {
				t.Errorf("served %v, want %v", g, tc.want)
			}
			if len(refused) != tc.refused {
				t.Errorf("refused %d, want %d", len(refused), tc.refused)
			}
		})
	}
}
