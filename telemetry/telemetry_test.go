package telemetry_test

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wardmesh/ward/internal/golden"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/telemetry"
	"github.com/wardmesh/ward/xds/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

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

func sidecar(name string, labels mesh.Labels) *mesh.Proxy {
	return &mesh.Proxy{ID: "sidecar~10.0.0.1~" + name + ".shop~shop.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "shop", Labels: labels}
}

var proxies = map[string]*mesh.Proxy{
	"web":      sidecar("web-1", mesh.Labels{"app": "web"}),
	"payments": sidecar("payments-1", mesh.Labels{"app": "payments"}),
	"cart":     sidecar("cart-1", mesh.Labels{"app": "cart"}),
	"gateway": {ID: "router~10.0.0.9~public-1.gateways~gateways.svc.cluster.local", Type: mesh.ProxyRouter, Namespace: "gateways",
		Labels: mesh.Labels{telemetry.LabelGatewayName: "public"}},
	"other": {ID: "sidecar~10.0.0.2~db-1.other~other.svc.cluster.local", Type: mesh.ProxySidecar, Namespace: "other", Labels: mesh.Labels{"app": "db"}},
}

// assembled puts a proxy's telemetry into one listener for the golden
// file: per side an HTTP connection manager (access logs and tracing)
// and a tcp_proxy (access logs).
func assembled(t *testing.T, s *mesh.Snapshot, p *mesh.Proxy) *listenerv3.Listener {
	t.Helper()
	l := &listenerv3.Listener{Name: p.ID}
	for _, m := range []telemetry.Mode{telemetry.Client, telemetry.Server} {
		httpLogs, f1 := telemetry.AccessLogs(s, p, m, telemetry.HTTP)
		tcpLogs, f2 := telemetry.AccessLogs(s, p, m, telemetry.TCP)
		tr, f3 := telemetry.HTTPTracing(s, p, m)
		if f := slices.Concat(f1, f2, f3); len(f) > 0 {
			t.Errorf("%s %s: findings %v", p.ID, m, f)
		}
		hcm := &hcmv3.HttpConnectionManager{StatPrefix: strings.ToLower(m.String()), AccessLog: httpLogs, Tracing: tr,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}}}
		tcp := &tcpv3.TcpProxy{StatPrefix: strings.ToLower(m.String()), AccessLog: tcpLogs, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "x"}}
		l.FilterChains = append(l.FilterChains,
			&listenerv3.FilterChain{Name: strings.ToLower(m.String()) + "-http", Filters: []*listenerv3.Filter{filter(t, translate.FilterHCM, hcm)}},
			&listenerv3.FilterChain{Name: strings.ToLower(m.String()) + "-tcp", Filters: []*listenerv3.Filter{filter(t, translate.FilterTCP, tcp)}})
	}
	if err := translate.ValidateDeep(l); err != nil {
		t.Fatalf("%s: %v", p.ID, err)
	}
	return l
}

func filter(t *testing.T, name string, m proto.Message) *listenerv3.Filter {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

func TestGolden(t *testing.T) {
	s := load(t, "mesh")
	for name, p := range proxies {
		t.Run(name, func(t *testing.T) {
			golden.Proto(t, "mesh."+name, assembled(t, s, p), *update)
		})
	}
}

func TestApplicable(t *testing.T) {
	s := load(t, "mesh")
	for _, tc := range []struct {
		proxy              string
		root, ns, workload string
	}{
		{"web", "mesh-default", "shop", ""},
		{"payments", "mesh-default", "shop", "payments"},
		{"cart", "mesh-default", "shop", "cart"},
		{"gateway", "mesh-default", "", "public"},
		{"other", "mesh-default", "", ""},
	} {
		l := telemetry.Applicable(s, proxies[tc.proxy])
		got := []string{name(l.Root), name(l.Namespace), name(l.Workload)}
		if want := []string{tc.root, tc.ns, tc.workload}; !slices.Equal(got, want) {
			t.Errorf("%s: Applicable = %q, want %q", tc.proxy, got, want)
		}
	}
}

func name(c *mesh.Config) string {
	if c == nil {
		return ""
	}
	return c.Name
}

// loggers lists the logger names (with the filter expression, if any) a
// proxy gets on one side.
func loggers(s *mesh.Snapshot, p *mesh.Proxy, m telemetry.Mode, proto telemetry.Protocol) []string {
	als, _ := telemetry.AccessLogs(s, p, m, proto)
	var out []string
	for _, al := range als {
		n := strings.TrimPrefix(al.GetName(), "envoy.access_loggers.")
		if f := al.GetFilter().GetExtensionFilter(); f != nil {
			n += "?"
		}
		out = append(out, n)
	}
	return out
}

// TestPrecedence describes what each proxy logs where: the behaviour the
// goldens pin, stated.
func TestPrecedence(t *testing.T) {
	s := load(t, "mesh")
	C, S, H, T := telemetry.Client, telemetry.Server, telemetry.HTTP, telemetry.TCP
	for _, tc := range []struct {
		why   string
		proxy string
		mode  telemetry.Mode
		proto telemetry.Protocol
		want  []string
	}{
		{"client side keeps the mesh-wide envoy log", "web", C, H, []string{"file"}},
		{"the namespace's server rule replaces envoy with its providers, filtered", "web", S, H, []string{"file?", "http_grpc?"}},
		{"TCP ALS only on tcp_proxy", "web", S, T, []string{"file?", "tcp_grpc?"}},
		{"the workload disables its client side", "payments", C, H, nil},
		{"and inherits the namespace's server side", "payments", S, T, []string{"file?", "tcp_grpc?"}},
		{"a workload's providers replace everything inherited", "cart", C, H, []string{"open_telemetry", "file", "file"}},
		{"gateways are servers", "gateway", S, H, []string{"http_grpc"}},
		{"HTTP ALS not on TCP", "gateway", S, T, nil},
		{"no Telemetry in the namespace: mesh-wide", "other", S, T, []string{"file"}},
	} {
		if got := loggers(s, proxies[tc.proxy], tc.mode, tc.proto); !slices.Equal(got, tc.want) {
			t.Errorf("%s (%s %s): got %q, want %q", tc.why, tc.proxy, tc.mode, got, tc.want)
		}
	}
}

func TestDefaultsWithoutTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    mesh.MeshConfig
		want int
	}{
		{"nothing configured: no access logs", mesh.MeshConfig{}, 0},
		{"defaultProviders alone", mesh.MeshConfig{DefaultProviders: &mesh.DefaultProviders{AccessLogging: []string{"envoy"}}}, 1},
	} {
		s := mesh.NewSnapshot(tc.m, nil)
		als, f := telemetry.AccessLogs(s, proxies["web"], telemetry.Server, telemetry.HTTP)
		if len(als) != tc.want || len(f) > 0 {
			t.Errorf("%s: %d entries, findings %v; want %d", tc.name, len(als), f, tc.want)
		}
		if tr, _ := telemetry.HTTPTracing(s, proxies["web"], telemetry.Server); tr != nil {
			t.Errorf("%s: tracing without a provider: %v", tc.name, tr)
		}
	}
}

func TestFindings(t *testing.T) {
	s := load(t, "mesh")
	p := sidecar("broken-1", mesh.Labels{"app": "broken"})
	als, findings := telemetry.AccessLogs(s, p, telemetry.Server, telemetry.HTTP)
	if len(als) != 0 {
		t.Errorf("got %d entries for unusable providers", len(als))
	}
	tr, tf := telemetry.HTTPTracing(s, p, telemetry.Server)
	if tr != nil {
		t.Errorf("tracing with an access-log provider: %v", tr)
	}
	var got []string
	for _, f := range append(findings, tf...) {
		got = append(got, f.String())
	}
	want := []string{
		`Telemetry shop/broken: provider missing: service "nowhere.example.com" is not in the service registry`,
		`Telemetry shop/broken: provider "nope" is not defined in meshConfig.extensionProviders`,
		`Telemetry shop/broken: provider "otel" is not an access logging provider`,
		`Telemetry shop/broken: provider "als" is not a tracing provider`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProxylessGetsNothing(t *testing.T) {
	s := load(t, "mesh")
	p := &mesh.Proxy{ID: "grpc~127.0.0.1~web.shop", Type: mesh.ProxyGRPC, Namespace: "shop", Labels: mesh.Labels{"app": "web"}}
	for _, m := range []telemetry.Mode{telemetry.Client, telemetry.Server} {
		if als, _ := telemetry.AccessLogs(s, p, m, telemetry.HTTP); als != nil {
			t.Errorf("proxyless %s access logs: %v", m, als)
		}
		if tr, _ := telemetry.HTTPTracing(s, p, m); tr != nil {
			t.Errorf("proxyless %s tracing: %v", m, tr)
		}
	}
}

func TestFingerprint(t *testing.T) {
	s := load(t, "mesh")
	web, payments := proxies["web"], proxies["payments"]
	if telemetry.Fingerprint(s, web) == telemetry.Fingerprint(s, payments) {
		t.Error("proxies under different Telemetry share a fingerprint")
	}
	if a, b := telemetry.Fingerprint(s, web), telemetry.Fingerprint(s, web); a != b {
		t.Errorf("fingerprint not stable: %s %s", a, b)
	}
	// Changing the namespace Telemetry changes web's fingerprint.
	var cfgs []*mesh.Config
	for _, k := range s.Keys() {
		c, _ := s.Get(k)
		if k.Kind == mesh.KindTelemetry && k.Name == "shop" {
			c = &mesh.Config{Meta: c.Meta, Spec: proto.Clone(c.Spec)}
			c.Spec.ProtoReflect().Clear(c.Spec.ProtoReflect().Descriptor().Fields().ByName("access_logging"))
		}
		cfgs = append(cfgs, c)
	}
	s2 := mesh.NewSnapshot(s.Mesh(), cfgs)
	if telemetry.Fingerprint(s, web) == telemetry.Fingerprint(s2, web) {
		t.Error("fingerprint unchanged after the namespace Telemetry changed")
	}
}

func TestAnalyze(t *testing.T) {
	var got []string
	for _, f := range telemetry.Analyze(load(t, "mesh")) {
		got = append(got, f.String())
	}
	want := []string{
		`Telemetry shop/broken: spec.accessLogging[0].providers[0]: provider "missing": service "nowhere.example.com" is not in the service registry`,
		`Telemetry shop/broken: spec.accessLogging[0].providers[1]: provider "nope" is not defined in meshConfig.extensionProviders`,
		`Telemetry shop/broken: spec.accessLogging[0].providers[2]: provider "otel" is not an access logging provider`,
		`Telemetry shop/broken: spec.tracing[0].providers[0]: provider "als" is not a tracing provider`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Analyze:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWardProvider: the built-in "ward" provider streams HTTP and TCP
// logs to Ward's own Access Log Service through the cluster the caller
// names, and is reported when there is none.
func TestWardProvider(t *testing.T) {
	m := mesh.MeshConfig{DefaultProviders: &mesh.DefaultProviders{AccessLogging: []string{mesh.ProviderWard}}}
	s := mesh.NewSnapshot(m, nil)
	tr := telemetry.Translator{WardCluster: "outbound|15012||ward-ext-authz"}
	for proto, want := range map[telemetry.Protocol]string{telemetry.HTTP: telemetry.LoggerHTTPGRPC, telemetry.TCP: telemetry.LoggerTCPGRPC} {
		als, f := tr.AccessLogs(s, proxies["web"], telemetry.Server, proto)
		if len(als) != 1 || als[0].GetName() != want || len(f) > 0 {
			t.Fatalf("%v: %v %v, want one %s", proto, als, f, want)
		}
		if err := translate.ValidateDeep(als[0]); err != nil {
			t.Error(err)
		}
		if !strings.Contains(als[0].GetTypedConfig().String(), "outbound|15012||ward-ext-authz") {
			t.Errorf("%v: entry does not stream to Ward's cluster: %v", proto, als[0])
		}
		if proto != telemetry.HTTP {
			continue
		}
		var cfg grpcv3.HttpGrpcAccessLogConfig
		if err := als[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			t.Fatal(err)
		}
		// what Ward's service reads for request_protocol and grpc_response_status
		if !slices.Equal(cfg.GetAdditionalRequestHeadersToLog(), []string{"content-type"}) ||
			!slices.Equal(cfg.GetAdditionalResponseHeadersToLog(), []string{"grpc-status"}) ||
			!slices.Equal(cfg.GetAdditionalResponseTrailersToLog(), []string{"grpc-status"}) {
			t.Errorf("HTTP logger headers: %v", &cfg)
		}
	}
	als, f := telemetry.AccessLogs(s, proxies["web"], telemetry.Server, telemetry.HTTP)
	if len(als) != 0 || len(f) != 1 || !strings.Contains(f[0].String(), "--ext-authz-target") {
		t.Errorf("without a cluster to Ward: %v %v, want one finding", als, f)
	}
}
