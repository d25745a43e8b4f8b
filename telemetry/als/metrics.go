package als

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// istioLabels are the labels of Istio's standard metrics that Ward has
// data for, in Istio's names, so that Istio's dashboards and alerts
// work on them. Values Ward does not know are "unknown", as in Istio.
var istioLabels = []string{
	"reporter", "source_principal", "source_workload_namespace",
	"destination_principal", "destination_workload_namespace", "destination_service",
	"request_protocol", "response_code", "connection_security_policy",
	"source_workload", "source_canonical_service",
	"destination_workload", "destination_canonical_service", "response_flags",
}

// labelSet is one series' label values, in istioLabels' order.
type labelSet [14]string

// DefaultMaxSeries bounds the label sets Metrics exports.
const DefaultMaxSeries = 10000

// Metrics exports Istio's standard metrics (istio_requests_total,
// istio_request_duration_milliseconds, istio_tcp_connections_opened_total)
// from call records. The number of label sets is bounded; records that
// would add one beyond the bound are counted in
// ward_telemetry_metric_series_dropped_total instead.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	tcpOpened *prometheus.CounterVec
	dropped   prometheus.Counter

	mu     sync.Mutex
	series map[labelSet]bool
	max    int

	peers atomic.Pointer[map[string]peer] // principal → workload, from SetWorkloads
}

// NewMetrics registers the metrics with reg; maxSeries ≤ 0 means
// DefaultMaxSeries.
func NewMetrics(reg prometheus.Registerer, maxSeries int) (*Metrics, error) {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total",
			Help: "Requests reported by proxies' access logs (Istio's standard metric)."}, istioLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds",
			Help:    "Request durations reported by proxies' access logs (Istio's standard metric).",
			Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}}, istioLabels),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_opened_total",
			Help: "TCP connections reported by proxies' access logs (Istio's standard metric)."}, istioLabels),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_telemetry_metric_series_dropped_total",
			Help: "Records not counted in Istio's standard metrics because their label set would pass the series bound."}),
		series: map[labelSet]bool{},
		max:    maxSeries,
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.tcpOpened, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe counts one record.
func (m *Metrics) Observe(r Record) {
	l := m.labels(r)
	if !m.admit(l) {
		m.dropped.Inc()
		return
	}
	if r.Protocol == "tcp" {
		m.tcpOpened.WithLabelValues(l[:]...).Inc()
		return
	}
	m.requests.WithLabelValues(l[:]...).Inc()
	m.duration.WithLabelValues(l[:]...).Observe(float64(r.DurationUS) / 1000)
}

// admit reports whether l is a known label set or one more fits.
func (m *Metrics) admit(l labelSet) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.series[l] {
		return true
	}
	if len(m.series) >= m.max {
		return false
	}
	m.series[l] = true
	return true
}

func (m *Metrics) labels(r Record) labelSet {
	reporter := "source"
	if r.Side == "server" {
		reporter = "destination"
	}
	security := "none"
	if r.MTLS {
		security = "mutual_tls"
	}
	code := strconv.FormatUint(uint64(r.ResponseCode), 10) // 0: no response, as Istio
	flags := r.ResponseFlags
	if flags == "" {
		flags = "-" // Istio's value for none
	}
	var peers map[string]peer
	if p := m.peers.Load(); p != nil {
		peers = *p
	}
	src, dst := peers[r.Source].orUnknown(), peers[r.Destination].orUnknown()
	return labelSet{
		reporter,
		orUnknown(r.Source), namespaceOf(r.Source),
		orUnknown(r.Destination), namespaceOf(r.Destination), serviceOf(r.Cluster),
		orUnknown(r.Protocol), code, security,
		src.workload, src.canonical,
		dst.workload, dst.canonical, flags,
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// namespaceOf is the namespace of a workload SPIFFE ID
// (spiffe://<td>/ns/<ns>/sa/<sa>), cut without allocating: this runs for
// every record.
func namespaceOf(principal string) string {
	rest, ok := strings.CutPrefix(principal, "spiffe://")
	if !ok {
		return "unknown"
	}
	_, rest, ok = strings.Cut(rest, "/ns/")
	if !ok {
		return "unknown"
	}
	ns, sa, ok := strings.Cut(rest, "/sa/")
	if !ok || ns == "" || sa == "" || strings.Contains(ns, "/") {
		return "unknown"
	}
	return ns
}

// serviceOf is the service host of an outbound cluster
// (outbound|<port>|<subset>|<host>); inbound clusters do not name one.
func serviceOf(cluster string) string {
	if strings.HasPrefix(cluster, "outbound|") {
		if i := strings.LastIndexByte(cluster, '|'); i >= 0 && i+1 < len(cluster) {
			return cluster[i+1:]
		}
	}
	return "unknown"
}
