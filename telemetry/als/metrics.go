package als

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// httpLabels are the labels of Istio's standard HTTP metrics
// (istio_requests_total, istio_request_duration_milliseconds), in
// Istio's names, so that Istio's dashboards and alerts work on them.
// Values Ward does not know are "unknown", as in Istio.
var httpLabels = []string{
	"reporter",
	"source_workload", "source_canonical_service", "source_canonical_revision", "source_workload_namespace",
	"source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_app", "destination_version", "destination_service", "destination_canonical_service",
	"destination_canonical_revision", "destination_service_name", "destination_service_namespace",
	"destination_cluster",
	"request_protocol", "response_flags", "connection_security_policy",
	"response_code", "grpc_response_status",
}

// tcpLabels are the labels of Istio's TCP metrics: the HTTP ones but
// response_code and grpc_response_status, which Istio sets only on
// HTTP metrics.
var tcpLabels = httpLabels[:len(httpLabels)-2]

// labelSet is one series' label values, in httpLabels' order; a TCP
// series leaves the last two empty and uses the first len(tcpLabels).
type labelSet [25]string

// DefaultMaxSeries bounds the label sets Metrics exports.
const DefaultMaxSeries = 10000

// Metrics exports Istio's standard metrics (istio_requests_total,
// istio_request_duration_milliseconds, istio_tcp_connections_opened_total
// and _closed_total, istio_tcp_sent_bytes_total and
// istio_tcp_received_bytes_total) from call records. The number of label
// sets is bounded; records that would add one beyond the bound are
// counted in ward_telemetry_metric_series_dropped_total instead.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	tcpOpened *prometheus.CounterVec
	tcpClosed *prometheus.CounterVec
	tcpSent   *prometheus.CounterVec
	tcpRecv   *prometheus.CounterVec
	dropped   prometheus.Counter

	mu     sync.Mutex
	series map[labelSet]*children
	max    int

	dir atomic.Pointer[directory] // from SetWorkloads
}

// NewMetrics registers the metrics with reg; maxSeries ≤ 0 means
// DefaultMaxSeries.
func NewMetrics(reg prometheus.Registerer, maxSeries int) (*Metrics, error) {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total",
			Help: "Requests reported by proxies' access logs (Istio's standard metric)."}, httpLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds",
			Help:    "Request durations reported by proxies' access logs (Istio's standard metric).",
			Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}}, httpLabels),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_opened_total",
			Help: "TCP connections reported by proxies' access logs (Istio's standard metric)."}, tcpLabels),
		tcpClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_closed_total",
			Help: "Closed TCP connections reported by proxies' access logs (Istio's standard metric)."}, tcpLabels),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_sent_bytes_total",
			Help: "Bytes sent to the downstream peer on TCP connections reported by proxies' access logs (Istio's standard metric)."}, tcpLabels),
		tcpRecv: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_received_bytes_total",
			Help: "Bytes received from the downstream peer on TCP connections reported by proxies' access logs (Istio's standard metric)."}, tcpLabels),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_telemetry_metric_series_dropped_total",
			Help: "Records not counted in Istio's standard metrics because their label set would pass the series bound."}),
		series: map[labelSet]*children{},
		max:    maxSeries,
	}
	m.dir.Store(&directory{})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.tcpOpened, m.tcpClosed, m.tcpSent, m.tcpRecv, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// children are one label set's series, looked up once when the set is
// first seen: a later record of the set costs one map lookup instead of
// hashing its 25 values again for each metric (WithLabelValues).
type children struct {
	requests                               prometheus.Counter
	duration                               prometheus.Observer
	tcpOpened, tcpClosed, tcpSent, tcpRecv prometheus.Counter
}

// Observe counts one record. Records of a Store with these Metrics are
// already resolved (Resolve); others are counted as they are.
func (m *Metrics) Observe(r Record) {
	c := m.admit(m.labels(&r), r.Protocol == "tcp")
	switch {
	case c == nil:
		m.dropped.Inc()
	case c.tcpOpened != nil:
		// Envoy logs a TCP connection once, when it closes (Ward sets no
		// access_log_flush_interval): it was opened and closed.
		c.tcpOpened.Inc()
		c.tcpClosed.Inc()
		c.tcpSent.Add(float64(r.SentBytes))
		c.tcpRecv.Add(float64(r.ReceivedBytes))
	default:
		c.requests.Inc()
		c.duration.Observe(float64(r.DurationUS) / 1000)
	}
}

// admit returns l's series, made when one more fits; nil when l is new
// and the bound is reached.
func (m *Metrics) admit(l labelSet, tcp bool) *children {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.series[l]; ok {
		return c
	}
	if len(m.series) >= m.max {
		return nil
	}
	c := &children{}
	if tcp {
		tl := l[:len(tcpLabels)]
		c.tcpOpened, c.tcpClosed = m.tcpOpened.WithLabelValues(tl...), m.tcpClosed.WithLabelValues(tl...)
		c.tcpSent, c.tcpRecv = m.tcpSent.WithLabelValues(tl...), m.tcpRecv.WithLabelValues(tl...)
	} else {
		c.requests, c.duration = m.requests.WithLabelValues(l[:]...), m.duration.WithLabelValues(l[:]...)
	}
	m.series[l] = c
	return c
}

// labels is r's label set. Every value that the record also carries
// (principals, protocol, gRPC status, destination service, flags) is
// taken from it, so the record and its series agree.
func (m *Metrics) labels(r *Record) labelSet {
	d := m.dir.Load()
	server := r.Side == "server"
	reporter, security := "source", "unknown" // a client cannot know the server's policy
	if server {
		reporter, security = "destination", "none"
		if r.MTLS {
			security = "mutual_tls"
		}
	}
	dstPrincipal := r.Destination
	if server && !r.MTLS {
		dstPrincipal = "" // Istio sets it only when peer authentication is used
	}
	src, dst := d.peer(r.Source), d.peer(r.Destination)
	var l labelSet
	copy(l[:], []string{
		reporter,
		src.workload, src.canonical, src.revision, namespaceOf(r.Source),
		orUnknown(r.Source), src.app, src.version, "unknown",
		dst.workload, namespaceOf(r.Destination), orUnknown(dstPrincipal),
		dst.app, dst.version, orUnknown(r.DestinationService), dst.canonical,
		dst.revision, orUnknown(r.DestinationServiceName), orUnknown(r.DestinationServiceNamespace),
		"unknown",
		orUnknown(r.Protocol), orDash(r.ResponseFlags), security,
	})
	if r.Protocol != "tcp" {
		l[23] = strconv.FormatUint(uint64(r.ResponseCode), 10) // 0: no response, as Istio
		l[24] = r.GRPCStatus                                   // "" unless gRPC, as Istio
	}
	return l
}

// peer is the labels of principal's workloads: "unknown" where they
// disagree; for a principal the mesh does not know, "unknown" but the
// canonical revision, "latest" (Istio's value when the peer is unknown).
func (d *directory) peer(principal string) peer {
	p, ok := d.peers[principal]
	if !ok {
		return peer{"unknown", "unknown", "latest", "unknown", "unknown"}
	}
	return peer{orUnknown(p.workload), orUnknown(p.canonical), orUnknown(p.revision), orUnknown(p.app), orUnknown(p.version)}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// orDash is Envoy's and Istio's response_flags for none: "-".
func orDash(s string) string {
	if s == "" {
		return "-"
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
