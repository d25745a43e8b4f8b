package translate_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCases: Istio YAML in testdata/<dir>/config.yaml, Envoy YAML out in
// testdata/<dir>.<name>.golden.yaml, for one proxy each.
var goldenCases = []struct {
	dir, name string
	proxy     mesh.Proxy
}{
	{"sidecar", "productpage", mesh.Proxy{ID: "sidecar~10.0.3.1~productpage-1.bookinfo~bookinfo.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "bookinfo", IPs: []string{"10.0.3.1"}, Labels: mesh.Labels{"app": "productpage"}}},
	{"grpc", "client", mesh.Proxy{ID: "grpc~127.0.0.2~client.test~test.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "test", IPs: []string{"127.0.0.2"}, Labels: mesh.Labels{"app": "client"}}},
	{"grpc", "server-v1", mesh.Proxy{ID: "grpc~127.0.0.1~echo-v1.test~test.svc.cluster.local", Type: mesh.ProxyGRPC, Namespace: "test", IPs: []string{"127.0.0.1"}, Labels: mesh.Labels{"app": "echo", "version": "v1"}}},
	{"gateway", "ingress", mesh.Proxy{ID: "router~10.0.0.10~ingress.istio-system~istio-system.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "istio-system", IPs: []string{"10.0.0.10"}, Labels: mesh.Labels{"istio": "ingressgateway"}}},
	{"tcp", "app", mesh.Proxy{ID: "sidecar~10.2.0.9~app-1.data~data.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "data", IPs: []string{"10.2.0.9"}, Labels: mesh.Labels{"app": "app"}}},
	{"vshosts", "productpage", mesh.Proxy{ID: "sidecar~10.0.3.1~productpage-1.bookinfo~bookinfo.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "bookinfo", IPs: []string{"10.0.3.1"}, Labels: mesh.Labels{"app": "productpage"}}},
	{"locality", "us-east", localityProxy(mesh.ProxySidecar, "us-east/a/1")},
	{"locality", "grpc-us-east", localityProxy(mesh.ProxyGRPC, "us-east/a/1")},
	{"shortnames", "sidecar-bookinfo", shortNamesProxy(mesh.ProxySidecar, "bookinfo")},
	{"shortnames", "grpc-bookinfo", shortNamesProxy(mesh.ProxyGRPC, "bookinfo")},
}

func load(t testing.TB, dir string) *mesh.Snapshot {
	t.Helper()
	res, err := file.Load(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("%s: rejected: %v", dir, res.Errs())
	}
	return res.Snapshot
}

func generate(t testing.TB, snap *mesh.Snapshot, p mesh.Proxy) *translate.Resources {
	t.Helper()
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(&p), translate.Hooks{})
	if err := res.Validate(); err != nil {
		t.Fatalf("generated resources do not validate: %v", err)
	}
	return res
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.dir+"/"+tc.name, func(t *testing.T) {
			got := generate(t, load(t, tc.dir), tc.proxy)
			path := filepath.Join("testdata", tc.dir+"."+tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, toYAML(t, got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := fromYAML(t, path)
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("%s differs (-want +got); run go test -update to accept:\n%s", path, diff)
			}
		})
	}
}

type goldenDoc struct {
	Listeners []json.RawMessage `json:"listeners,omitempty"`
	Routes    []json.RawMessage `json:"routes,omitempty"`
	Clusters  []json.RawMessage `json:"clusters,omitempty"`
	Endpoints []json.RawMessage `json:"endpoints,omitempty"`
}

func raws[T proto.Message](t testing.TB, in []T) []json.RawMessage {
	var out []json.RawMessage
	for _, m := range in {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func toYAML(t testing.TB, r *translate.Resources) []byte {
	j, err := json.Marshal(goldenDoc{raws(t, r.Listeners), raws(t, r.Routes), raws(t, r.Clusters), raws(t, r.Endpoints)})
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func unraw[T proto.Message](t testing.TB, in []json.RawMessage, mk func() T) []T {
	var out []T
	for _, b := range in {
		m := mk()
		if err := protojson.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func fromYAML(t testing.TB, path string) *translate.Resources {
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var d goldenDoc
	if err := json.Unmarshal(j, &d); err != nil {
		t.Fatal(err)
	}
	return &translate.Resources{
		Listeners: unraw(t, d.Listeners, func() *listener.Listener { return &listener.Listener{} }),
		Routes:    unraw(t, d.Routes, func() *route.RouteConfiguration { return &route.RouteConfiguration{} }),
		Clusters:  unraw(t, d.Clusters, func() *cluster.Cluster { return &cluster.Cluster{} }),
		Endpoints: unraw(t, d.Endpoints, func() *endpoint.ClusterLoadAssignment { return &endpoint.ClusterLoadAssignment{} }),
	}
}
