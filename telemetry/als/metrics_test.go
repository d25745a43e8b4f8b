package als_test

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/telemetry/als"
)

// sample is one gathered series: its metric, labels and value (a
// histogram's sample count).
type sample struct {
	metric string
	labels map[string]string
	value  string
}

// TestIstioMetrics: records become Istio's standard metrics, and the
// series bound holds. (Every label's value is TestIstioLabels'.)
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
	inbound := map[string]string{"reporter": "destination", "source_principal": cartID, "destination_principal": webID,
		"destination_workload_namespace": "shop", "request_protocol": "http", "response_code": "200", "connection_security_policy": "mutual_tls"}
	tcp := map[string]string{"reporter": "source", "source_principal": webID, "source_workload_namespace": "shop",
		"destination_service": "db.data.svc.cluster.local", "destination_service_name": "db", "destination_service_namespace": "data",
		"request_protocol": "tcp", "connection_security_policy": "unknown"}
	want := []sample{
		{"istio_requests_total", inbound, "2"},
		{"istio_request_duration_milliseconds", inbound, "2"},
		{"istio_tcp_connections_opened_total", tcp, "1"},
		{"istio_tcp_connections_closed_total", tcp, "1"},
		{"istio_tcp_sent_bytes_total", tcp, "0"},
		{"istio_tcp_received_bytes_total", tcp, "0"},
		{"ward_telemetry_metric_series_dropped_total", nil, "1"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for _, w := range want {
		if v := find(got, w.metric, w.labels); v != w.value {
			t.Errorf("%s%v = %q, want %s\ngot: %v", w.metric, w.labels, v, w.value, got)
		}
	}
}

// gather returns reg's series.
func gather(t *testing.T, reg *prometheus.Registry) []sample {
	t.Helper()
	var got []sample
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range mt.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			v := mt.GetCounter().GetValue()
			if h := mt.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			got = append(got, sample{f.GetName(), ls, strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return got
}

// find is the value of the one series of metric whose labels include
// labels; "" when none or several.
func find(got []sample, metric string, labels map[string]string) string {
	value, n := "", 0
next:
	for _, s := range got {
		if s.metric != metric {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		value, n = s.value, n+1
	}
	if n != 1 {
		return ""
	}
	return value
}

// TestIstioMetricsWorkloads: workload, canonical-service, app and version
// labels come from the mesh's workloads, only where every workload of
// the identity agrees; response flags come from the record.
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
	want := []sample{
		{"istio_requests_total", map[string]string{
			"source_workload": "unknown", "source_canonical_service": "cart", "source_app": "cart", "source_version": "unknown", "source_canonical_revision": "unknown",
			"destination_workload": "web", "destination_canonical_service": "storefront", "destination_app": "web", "destination_canonical_revision": "latest",
			// web backs no service here: Istio's last resort, its canonical service
			"destination_service": "storefront", "destination_service_namespace": "shop",
			"response_code": "503", "response_flags": "UH"}, "1"},
		// another trust domain's shop/web is not the mesh's web
		{"istio_tcp_connections_opened_total", map[string]string{
			"source_workload": "unknown", "source_canonical_service": "unknown", "source_principal": "spiffe://other.domain/ns/shop/sa/web",
			"destination_workload": "db", "destination_canonical_service": "db", "response_flags": "-"}, "1"},
	}
	for _, w := range want {
		if v := find(got, w.metric, w.labels); v != w.value {
			t.Errorf("%s%v = %q, want %s\ngot: %v", w.metric, w.labels, v, w.value, got)
		}
	}
}
