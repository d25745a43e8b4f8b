package hooks

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/translate"
)

// telemetryExtra adds a collector, a TCP service and Telemetry to the
// examples: the built-in envoy file log everywhere, server sides logging
// errors only, OpenTelemetry tracing at 5%.
const telemetryExtra = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 4317, name: grpc-otlp, protocol: GRPC}]
  endpoints: [{address: 127.0.0.90}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: payments}
spec:
  hosts: [db.payments.svc.cluster.local]
  addresses: [240.0.0.50]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-db, protocol: TCP}]
  endpoints: [{address: 127.0.0.91}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - match: {mode: SERVER}
    filter: {expression: "response.code >= 400"}
  tracing:
  - randomSamplingPercentage: 5
`

func telemetrySnapshot(t *testing.T) *mesh.Snapshot {
	t.Helper()
	base := examples(t)
	var cfgs []*mesh.Config
	for _, k := range base.Keys() {
		c, _ := base.Get(k)
		cfgs = append(cfgs, c)
	}
	docs, err := schema.SplitYAML([]byte(telemetryExtra))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		dec, err := schema.Decode(d, mesh.Source{File: "extra"})
		if err != nil {
			t.Fatal(err)
		}
		if fes := schema.Validate(dec.Config); len(fes) > 0 {
			t.Fatalf("%s: %v", dec.Config.Key(), fes)
		}
		cfgs = append(cfgs, dec.Config)
	}
	m := base.Mesh()
	m.ExtensionProviders = append(m.ExtensionProviders, mesh.ExtensionProvider{Name: "otel", TelemetryProviders: mesh.TelemetryProviders{
		OpenTelemetry: &mesh.OtelTracingProvider{Service: "otel-collector.observability.svc.cluster.local", Port: 4317}}})
	m.DefaultProviders = &mesh.DefaultProviders{AccessLogging: []string{"envoy"}, Tracing: []string{"otel"}}
	return mesh.NewSnapshot(m, cfgs)
}

// observed is what one HTTP connection manager or tcp_proxy carries.
type observed struct {
	listener, chain string
	tcp             bool
	logs            int
	filtered        bool
	traced          bool
}

func observe(t *testing.T, ls []*listener.Listener) []observed {
	t.Helper()
	var out []observed
	for _, l := range ls {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h, tp := &hcmv3.HttpConnectionManager{}, &tcpv3.TcpProxy{}
				switch {
				case f.GetTypedConfig().MessageIs(h):
					if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
						t.Fatal(err)
					}
					out = append(out, observed{l.GetName(), fc.GetName(), false, len(h.GetAccessLog()), filtered(h.GetAccessLog()), h.GetTracing().GetProvider() != nil})
				case f.GetTypedConfig().MessageIs(tp):
					if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
						t.Fatal(err)
					}
					out = append(out, observed{l.GetName(), fc.GetName(), true, len(tp.GetAccessLog()), filtered(tp.GetAccessLog()), false})
				}
			}
		}
	}
	return out
}

func filtered[T interface{ GetFilter() F }, F comparable](als []T) bool {
	var zero F
	for _, a := range als {
		if a.GetFilter() != zero {
			return true
		}
	}
	return false
}

// TestTelemetryOnEveryListener: every HTTP connection manager and
// tcp_proxy of a sidecar (inbound: server, filtered; outbound: client)
// and of a gateway (server) carries the access log, HTTP ones the
// tracer; proxyless gRPC gets none.
func TestTelemetryOnEveryListener(t *testing.T) {
	snap := telemetrySnapshot(t)
	for _, tc := range []struct {
		name  string
		proxy *mesh.Proxy
	}{
		{"sidecar", &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}},
		{"gateway", &mesh.Proxy{ID: "gw.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"127.0.0.10"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := observe(t, generate(t, snap, tc.proxy).Listeners)
			var inbound, outbound, tcp int
			for _, o := range obs {
				server := o.listener == "virtualInbound" || tc.proxy.Type == mesh.ProxyRouter
				switch {
				case o.logs != 1:
					t.Errorf("%s/%s: %d access logs, want 1", o.listener, o.chain, o.logs)
				case o.filtered != server:
					t.Errorf("%s/%s: filtered = %v, want %v (server side only)", o.listener, o.chain, o.filtered, server)
				case !o.tcp && !o.traced:
					t.Errorf("%s/%s: HTTP connection manager without tracer", o.listener, o.chain)
				}
				if server {
					inbound++
				} else {
					outbound++
				}
				if o.tcp {
					tcp++
				}
			}
			if inbound == 0 || (tc.proxy.Type == mesh.ProxySidecar && (outbound == 0 || tcp == 0)) {
				t.Errorf("too few chains observed: %d server, %d client, %d tcp: %+v", inbound, outbound, tcp, obs)
			}
		})
	}
	grpc := &mesh.Proxy{ID: "grpc~reviews", Type: mesh.ProxyGRPC, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}
	for _, o := range observe(t, generate(t, snap, grpc).Listeners) {
		if o.logs > 0 || o.traced {
			t.Errorf("proxyless %s/%s has telemetry: %+v", o.listener, o.chain, o)
		}
	}
}

// TestTelemetryFingerprint: a Telemetry change recomputes the proxies it
// applies to.
func TestTelemetryFingerprint(t *testing.T) {
	snap := telemetrySnapshot(t)
	p := &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews"}}
	h := New(Config{})
	var cfgs []*mesh.Config
	for _, k := range snap.Keys() {
		if k.Kind != mesh.KindTelemetry {
			c, _ := snap.Get(k)
			cfgs = append(cfgs, c)
		}
	}
	without := mesh.NewSnapshot(snap.Mesh(), cfgs)
	if h.Fingerprint(snap, p) == h.Fingerprint(without, p) {
		t.Error("removing the mesh-wide Telemetry left the fingerprint unchanged")
	}
}

// TestWardALSThroughSecurePort: with the ext_authz target on Ward's
// secure port, the built-in "ward" provider puts gRPC access loggers to
// that target's cluster (mTLS, Ward pinned) on every HTTP connection
// manager and tcp_proxy, and the cluster is in the proxy's output.
func TestWardALSThroughSecurePort(t *testing.T) {
	base := telemetrySnapshot(t)
	m := base.Mesh()
	m.DefaultProviders = &mesh.DefaultProviders{AccessLogging: []string{mesh.ProviderWard}}
	var cfgs []*mesh.Config
	for _, k := range base.Keys() {
		if k.Kind != mesh.KindTelemetry {
			c, _ := base.Get(k)
			cfgs = append(cfgs, c)
		}
	}
	snap := mesh.NewSnapshot(m, cfgs)
	target, err := ParseExtAuthzTarget("127.0.0.1:15012")
	if err != nil {
		t.Fatal(err)
	}
	target.TLS = true
	p := &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), New(Config{ExtAuthz: target}))
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	hasCluster := false
	for _, c := range res.Clusters {
		hasCluster = hasCluster || c.GetName() == target.ClusterName()
	}
	if !hasCluster {
		t.Errorf("no cluster %s", target.ClusterName())
	}
	for _, o := range observe(t, res.Listeners) {
		if o.logs != 1 {
			t.Errorf("%s/%s: %d access logs, want Ward's", o.listener, o.chain, o.logs)
		}
	}
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h, tp := &hcmv3.HttpConnectionManager{}, &tcpv3.TcpProxy{}
				var logs []string
				if f.GetTypedConfig().UnmarshalTo(h) == nil {
					for _, a := range h.GetAccessLog() {
						logs = append(logs, a.GetName()+" "+a.GetTypedConfig().String())
					}
				} else if f.GetTypedConfig().UnmarshalTo(tp) == nil {
					for _, a := range tp.GetAccessLog() {
						logs = append(logs, a.GetName()+" "+a.GetTypedConfig().String())
					}
				}
				for _, s := range logs {
					if !strings.Contains(s, "_grpc") || !strings.Contains(s, target.ClusterName()) {
						t.Errorf("%s/%s: %s, want a gRPC logger to %s", l.GetName(), fc.GetName(), s, target.ClusterName())
					}
				}
			}
		}
	}
}
