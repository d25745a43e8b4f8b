package als

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	tWeb  = "spiffe://cluster.local/ns/shop/sa/web"
	tCart = "spiffe://cluster.local/ns/shop/sa/cart"
	tDB   = "spiffe://cluster.local/ns/data/sa/db"
)

// meshWorkloads is the mesh of TestIstioLabels: web backs two services,
// cart and db one each.
var meshWorkloads = []Workload{
	{Name: "web", Namespace: "shop", ServiceAccount: "web", Labels: map[string]string{"app": "web", "version": "v1"},
		Services: []Service{{"web.shop.svc.cluster.local", "shop"}, {"storefront.shop.svc.cluster.local", "shop"}}},
	{Name: "cart", Namespace: "shop", ServiceAccount: "cart", Labels: map[string]string{"app": "cart", "version": "v2"},
		Services: []Service{{"cart.shop.svc.cluster.local", "shop"}}},
	{Name: "db", Namespace: "data", ServiceAccount: "db", Services: []Service{{"db.data.svc.cluster.local", "data"}}},
}

// common is an entry's common properties as Envoy fills them: the
// upstream cluster, the downstream peer's URI SAN when it presented a
// certificate, the duration.
func common(cluster, peerSAN string) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		UpstreamCluster:         cluster,
		DownstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.7"}}},
		Duration:                durationpb.New(3 * time.Millisecond),
	}
	if peerSAN != "" {
		c.TlsProperties = &datav3.TLSProperties{
			TlsVersion:                datav3.TLSProperties_TLSv1_3,
			PeerCertificateProperties: &datav3.TLSProperties_CertificateProperties{SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: peerSAN}}}},
		}
	}
	return c
}

func httpEntry(cluster, peerSAN, authority, contentType string, code uint32, trailers map[string]string) *datav3.HTTPAccessLogEntry {
	e := &datav3.HTTPAccessLogEntry{
		CommonProperties: common(cluster, peerSAN),
		ProtocolVersion:  datav3.HTTPAccessLogEntry_HTTP11,
		Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: "/", Authority: authority},
		Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(code), ResponseTrailers: trailers},
	}
	if contentType != "" {
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP2
		e.Request.RequestMethod = corev3.RequestMethod_POST
		e.Request.RequestHeaders = map[string]string{"content-type": contentType}
	}
	return e
}

// TestIstioLabels: Envoy-shaped entries become records and series whose
// every label is Istio's value, and the record's JSON line says what the
// series says. Labels a case does not name must be "unknown" (the
// canonical revisions "latest").
func TestIstioLabels(t *testing.T) {
	cases := []struct {
		name, reporter string
		http           *datav3.HTTPAccessLogEntry
		tcp            *datav3.TCPAccessLogEntry
		metric         string
		want           map[string]string
	}{{
		name: "outbound HTTP", reporter: tCart, metric: "istio_requests_total",
		http: httpEntry("outbound|80||web.shop.svc.cluster.local", "", "web.shop:80", "", 200, nil),
		want: map[string]string{"reporter": "source",
			"source_workload": "cart", "source_canonical_service": "cart", "source_canonical_revision": "v2",
			"source_workload_namespace": "shop", "source_principal": tCart, "source_app": "cart", "source_version": "v2",
			"destination_service": "web.shop.svc.cluster.local", "destination_service_name": "web", "destination_service_namespace": "shop",
			"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
		},
	}, {
		name: "inbound HTTP: the service the authority names", reporter: tWeb, metric: "istio_requests_total",
		http: httpEntry("inbound|8080||", tCart, "web:8080", "", 200, nil),
		want: map[string]string{"reporter": "destination",
			"source_workload": "cart", "source_canonical_service": "cart", "source_canonical_revision": "v2",
			"source_workload_namespace": "shop", "source_principal": tCart, "source_app": "cart", "source_version": "v2",
			"destination_workload": "web", "destination_workload_namespace": "shop", "destination_principal": tWeb,
			"destination_app": "web", "destination_version": "v1", "destination_canonical_service": "web", "destination_canonical_revision": "v1",
			"destination_service": "web.shop.svc.cluster.local", "destination_service_name": "web", "destination_service_namespace": "shop",
			"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
			"connection_security_policy": "mutual_tls",
		},
	}, {
		name: "inbound gRPC, PERMISSION_DENIED; an IP authority: the first service", reporter: tWeb, metric: "istio_requests_total",
		http: httpEntry("inbound|8080||", tCart, "10.0.0.1:8080", "application/grpc", 200, map[string]string{"grpc-status": "7"}),
		want: map[string]string{"reporter": "destination",
			"source_workload": "cart", "source_canonical_service": "cart", "source_canonical_revision": "v2",
			"source_workload_namespace": "shop", "source_principal": tCart, "source_app": "cart", "source_version": "v2",
			"destination_workload": "web", "destination_workload_namespace": "shop", "destination_principal": tWeb,
			"destination_app": "web", "destination_version": "v1", "destination_canonical_service": "web", "destination_canonical_revision": "v1",
			"destination_service": "storefront.shop.svc.cluster.local", "destination_service_name": "storefront", "destination_service_namespace": "shop",
			"request_protocol": "grpc", "response_code": "200", "grpc_response_status": "7", "response_flags": "-",
			"connection_security_policy": "mutual_tls",
		},
	}, {
		name: "TCP inbound with mTLS", reporter: tDB, metric: "istio_tcp_connections_opened_total",
		tcp: &datav3.TCPAccessLogEntry{CommonProperties: common("inbound|5432||", tWeb),
			ConnectionProperties: &datav3.ConnectionProperties{ReceivedBytes: 10, SentBytes: 20}},
		want: map[string]string{"reporter": "destination",
			"source_workload": "web", "source_canonical_service": "web", "source_canonical_revision": "v1",
			"source_workload_namespace": "shop", "source_principal": tWeb, "source_app": "web", "source_version": "v1",
			"destination_workload": "db", "destination_workload_namespace": "data", "destination_principal": tDB,
			"destination_canonical_service": "db",
			"destination_service":           "db.data.svc.cluster.local", "destination_service_name": "db", "destination_service_namespace": "data",
			"request_protocol": "tcp", "response_flags": "-", "connection_security_policy": "mutual_tls",
		},
	}, {
		name: "plaintext inbound: no principals, policy none", reporter: tWeb, metric: "istio_requests_total",
		http: httpEntry("inbound|8080||", "", "storefront.shop:8080", "", 403, nil),
		want: map[string]string{"reporter": "destination",
			"destination_workload": "web", "destination_workload_namespace": "shop",
			"destination_app": "web", "destination_version": "v1", "destination_canonical_service": "web", "destination_canonical_revision": "v1",
			"destination_service": "storefront.shop.svc.cluster.local", "destination_service_name": "storefront", "destination_service_namespace": "shop",
			"request_protocol": "http", "response_code": "403", "grpc_response_status": "", "response_flags": "-",
			"connection_security_policy": "none",
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg, 0)
			if err != nil {
				t.Fatal(err)
			}
			m.SetWorkloads("cluster.local", meshWorkloads)
			var sink bytes.Buffer
			s := NewStore(StoreConfig{Metrics: m, Sink: &sink})
			now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
			if c.http != nil {
				s.Add(fromHTTP(c.http, c.reporter, now))
			} else {
				s.Add(fromTCP(c.tcp, c.reporter, now))
			}
			s.Flush()
			got := series(t, reg, c.metric)
			for name, v := range got {
				want, ok := c.want[name]
				if !ok {
					want = "unknown"
					if strings.HasSuffix(name, "_canonical_revision") {
						want = "latest"
					}
				}
				if v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			wantNames := httpLabels
			if c.tcp != nil {
				wantNames = tcpLabels
			}
			if names := keys(got); strings.Join(names, ",") != strings.Join(sorted(wantNames), ",") {
				t.Errorf("labels %v, want Istio's %v", names, sorted(wantNames))
			}
			if c.tcp != nil {
				for metric, want := range map[string]float64{"istio_tcp_connections_closed_total": 1, "istio_tcp_received_bytes_total": 10, "istio_tcp_sent_bytes_total": 20} {
					if v := value(t, reg, metric); v != want {
						t.Errorf("%s = %v, want %v", metric, v, want)
					}
				}
			}
			var rec map[string]any
			if err := json.Unmarshal(sink.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"destination_service", "destination_service_name", "destination_service_namespace", "grpc_response_status"} {
				if rv, _ := rec[k].(string); rv != strings.TrimPrefix(c.want[k], "unknown") {
					t.Errorf("record %s = %q, series %q", k, rv, c.want[k])
				}
			}
			if rec["protocol"] != got["request_protocol"] {
				t.Errorf("record protocol %v, series request_protocol %q", rec["protocol"], got["request_protocol"])
			}
		})
	}
}

// series is the labels of the one series of metric in reg.
func series(t *testing.T, reg *prometheus.Registry, metric string) map[string]string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", metric, len(f.GetMetric()))
		}
		out := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	t.Fatalf("no %s series", metric)
	return nil
}

// value is the value of the one series of counter metric in reg.
func value(t *testing.T, reg *prometheus.Registry, metric string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == metric && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no single %s series", metric)
	return 0
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestGRPCStatus: the status is the trailer, else the header of a
// trailers-only response, else the response code's gRPC mapping; gRPC is
// the content-type, not gRPC-Web.
func TestGRPCStatus(t *testing.T) {
	for _, c := range []struct {
		name              string
		trailers, headers map[string]string
		code              uint32
		want              string
	}{
		{"trailer", map[string]string{"grpc-status": "0"}, map[string]string{"grpc-status": "3"}, 200, "0"},
		{"trailers-only", nil, map[string]string{"grpc-status": "5"}, 200, "5"},
		{"no status, 503", nil, nil, 503, "14"},
		{"no status, 200", nil, nil, 200, "2"},
		{"no response", nil, nil, 0, ""},
		{"out of range", map[string]string{"grpc-status": "99"}, nil, 200, "2"},
		{"garbage", map[string]string{"grpc-status": "x"}, nil, 200, "2"},
	} {
		resp := &datav3.HTTPResponseProperties{ResponseTrailers: c.trailers, ResponseHeaders: c.headers}
		if c.code != 0 {
			resp.ResponseCode = wrapperspb.UInt32(c.code)
		}
		if got := grpcStatus(resp); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	for ct, want := range map[string]bool{"application/grpc": true, "application/grpc+proto": true, "application/grpc;charset=utf-8": true,
		"application/grpc-web": false, "application/json": false, "": false} {
		if isGRPC(ct) != want {
			t.Errorf("isGRPC(%q) = %v", ct, !want)
		}
	}
}
