package als_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/telemetry/als"
)

// TestIstioMetrics: records become Istio's standard metrics with Istio's
// label names, and the series bound holds.
func TestIstioMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := als.NewMetrics(reg, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := als.NewStore(als.StoreConfig{Metrics: m})
	server := als.Record{Side: "server", Protocol: "http", Source: cartID, Destination: webID, Cluster: "inbound|8080||", ResponseCode: 200, MTLS: true, DurationUS: 1500}
	s.Add(server)
	s.Add(server)
	s.Add(als.Record{Side: "client", Protocol: "tcp", Source: webID, Cluster: "outbound|5432||db.data.svc.cluster.local"})
	s.Add(als.Record{Side: "client", Protocol: "http", Source: webID, Cluster: "outbound|80||other", ResponseCode: 503}) // a third series: dropped
	got := gather(t, reg)
	inbound := "connection_security_policy=mutual_tls,destination_canonical_service=unknown,destination_principal=spiffe://cluster.local/ns/shop/sa/web,destination_service=unknown,destination_workload=unknown,destination_workload_namespace=shop,reporter=destination,request_protocol=http,response_code=200,response_flags=-,source_canonical_service=unknown,source_principal=spiffe://cluster.local/ns/shop/sa/cart,source_workload=unknown,source_workload_namespace=shop"
	want := map[string]string{
		"istio_requests_total{" + inbound + "}":                "2",
		"istio_request_duration_milliseconds{" + inbound + "}": "2",
		"istio_tcp_connections_opened_total{connection_security_policy=none,destination_canonical_service=unknown,destination_principal=unknown,destination_service=db.data.svc.cluster.local,destination_workload=unknown,destination_workload_namespace=unknown,reporter=source,request_protocol=tcp,response_code=0,response_flags=-,source_canonical_service=unknown,source_principal=spiffe://cluster.local/ns/shop/sa/web,source_workload=unknown,source_workload_namespace=shop}": "1",
		"ward_telemetry_metric_series_dropped_total{}": "1",
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %s", k, got[k], v)
		}
	}
}

// gather renders reg's series as name{label=value,...} → value (a
// histogram's sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	got := map[string]string{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetCounter().GetValue()
			if h := mt.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			got[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return got
}

// TestIstioMetricsWorkloads: workload and canonical-service labels come
// from the mesh's workloads, only where every workload of the identity
// agrees; response flags come from the record.
func TestIstioMetricsWorkloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := als.NewMetrics(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.SetWorkloads("cluster.local", []als.Workload{
		{Name: "cart-v1", Namespace: "shop", ServiceAccount: "cart", Labels: map[string]string{"app": "cart", "version": "v1"}},
		{Name: "cart-v2", Namespace: "shop", ServiceAccount: "cart", Labels: map[string]string{"app": "cart", "version": "v2"}}, // names differ: source_workload unknown
		{Name: "web", Namespace: "shop", ServiceAccount: "web", Labels: map[string]string{"service.istio.io/canonical-name": "storefront", "app": "web"}},
		{Name: "db", Namespace: "data", ServiceAccount: "db"}, // no labels: canonical service is the name
	})
	s := als.NewStore(als.StoreConfig{Metrics: m})
	s.Add(als.Record{Side: "server", Protocol: "http", Source: cartID, Destination: webID, Cluster: "inbound|8080||", ResponseCode: 503, ResponseFlags: "UH", MTLS: true})
	s.Add(als.Record{Side: "server", Protocol: "tcp", Source: "spiffe://other.domain/ns/shop/sa/web", Destination: "spiffe://cluster.local/ns/data/sa/db", Cluster: "inbound|5432||", MTLS: true})
	got := gather(t, reg)
	want := map[string]string{
		"istio_requests_total{connection_security_policy=mutual_tls,destination_canonical_service=storefront,destination_principal=spiffe://cluster.local/ns/shop/sa/web,destination_service=unknown,destination_workload=web,destination_workload_namespace=shop,reporter=destination,request_protocol=http,response_code=503,response_flags=UH,source_canonical_service=cart,source_principal=spiffe://cluster.local/ns/shop/sa/cart,source_workload=unknown,source_workload_namespace=shop}": "1",
		// another trust domain's shop/web is not the mesh's web
		"istio_tcp_connections_opened_total{connection_security_policy=mutual_tls,destination_canonical_service=db,destination_principal=spiffe://cluster.local/ns/data/sa/db,destination_service=unknown,destination_workload=db,destination_workload_namespace=data,reporter=destination,request_protocol=tcp,response_code=0,response_flags=-,source_canonical_service=unknown,source_principal=spiffe://other.domain/ns/shop/sa/web,source_workload=unknown,source_workload_namespace=shop}": "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %s\ngot: %v", k, got[k], v, got)
		}
	}
}
