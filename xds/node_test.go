package xds

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
)

func TestProxyFromNode(t *testing.T) {
	meta := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name string
		node *core.Node
		want mesh.Proxy
	}{
		{
			name: "envoy sidecar id only",
			node: &core.Node{Id: "sidecar~10.0.0.1~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local"},
			want: mesh.Proxy{ID: "sidecar~10.0.0.1~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "bookinfo", IPs: []string{"10.0.0.1"}, Labels: mesh.Labels{}, Metadata: map[string]string{}},
		},
		{
			name: "node locality",
			node: &core.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Locality: &core.Locality{Region: "us-east", Zone: "a"}},
			want: mesh.Proxy{ID: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "ns", IPs: []string{"10.0.0.1"}, Labels: mesh.Labels{}, Metadata: map[string]string{"LOCALITY": "us-east/a"}},
		},
		{
			name: "router with metadata overriding the id",
			node: &core.Node{Id: "router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local", Metadata: meta(map[string]any{
				"NAMESPACE": "edge", "SERVICE_ACCOUNT": "gw", "INSTANCE_IPS": "10.0.0.3, 10.0.0.2", "LABELS": map[string]any{"istio": "ingressgateway"},
			})},
			want: mesh.Proxy{ID: "router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "edge", ServiceAccount: "gw",
				IPs: []string{"10.0.0.2", "10.0.0.3"}, Labels: mesh.Labels{"istio": "ingressgateway"},
				Metadata: map[string]string{"NAMESPACE": "edge", "SERVICE_ACCOUNT": "gw", "INSTANCE_IPS": "10.0.0.3, 10.0.0.2"}},
		},
		{
			name: "grpc by GENERATOR",
			node: &core.Node{Id: "client-1", Metadata: meta(map[string]any{"GENERATOR": "grpc", "NAMESPACE": "shop"})},
			want: mesh.Proxy{ID: "client-1", Type: mesh.ProxyGRPC, Namespace: "shop", Labels: mesh.Labels{}, Metadata: map[string]string{"GENERATOR": "grpc", "NAMESPACE": "shop"}},
		},
		{
			name: "grpc by id prefix, namespace from domain",
			node: &core.Node{Id: "grpc~10.0.0.4~client~shop.svc.cluster.local"},
			want: mesh.Proxy{ID: "grpc~10.0.0.4~client~shop.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "shop", IPs: []string{"10.0.0.4"}, Labels: mesh.Labels{}, Metadata: map[string]string{}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(&tc.want, ProxyFromNode(tc.node)); diff != "" {
				t.Errorf("ProxyFromNode (-want +got):\n%s", diff)
			}
		})
	}
}
