package xds

import "github.com/prometheus/client_golang/prometheus"

// metrics are Istio-like: pilot_xds_pushes → ward_xds_pushes_total, etc.
type metrics struct {
	pushes      *prometheus.CounterVec
	rejects     *prometheus.CounterVec
	pushTime    prometheus.Histogram
	convergence prometheus.Histogram
	connected   prometheus.Gauge
	genErrors   prometheus.Counter
	// rejectedStreams counts xDS streams refused, by reason (see
	// limits.go); rejectedConns counts connections closed at accept by
	// LimitListener, by reason.
	rejectedStreams *prometheus.CounterVec
	rejectedConns   *prometheus.CounterVec
	truncations     prometheus.Counter
	ignoredMeta     *prometheus.CounterVec
	inflightWaits   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_xds_pushes_total", Help: "xDS responses sent, by type (lds, rds, cds, eds).",
		}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_xds_rejects_total", Help: "xDS responses rejected (NACKed) by proxies, by type.",
		}, []string{"type"}),
		pushTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_xds_push_time_seconds", Help: "Time to compute and hand one config change to every connected proxy.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_proxy_convergence_time_seconds", Help: "Time from a config change reaching the server to a proxy ACKing it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_xds_connected_proxies", Help: "xDS streams bound to a node (each stream is its own proxy connection).",
		}),
		genErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_xds_generate_errors_total", Help: "Generated proxy configs that failed validation and were not pushed.",
		}),
		rejectedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_xds_rejected_streams_total", Help: "xDS streams refused, by reason: unauthenticated, identity_mismatch, invalid_node, max_streams, max_streams_per_source.",
		}, []string{"reason"}),
		rejectedConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_grpc_rejected_connections_total", Help: "Connections closed at accept by the connection caps, by reason: max_connections, max_connections_per_source.",
		}, []string{"reason"}),
		truncations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_xds_log_truncations_total", Help: "Client-supplied strings (node ids, NACK details, metadata) shortened before logging.",
		}),
		ignoredMeta: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_xds_ignored_metadata_total", Help: "Privileged node metadata ignored because the stream was not authenticated, by key.",
		}, []string{"key"}),
		inflightWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_xds_inflight_waits_total", Help: "Responses that waited for their own stream to answer earlier ones (per-stream back-pressure).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.pushes, m.rejects, m.pushTime, m.convergence, m.connected, m.genErrors,
			m.rejectedStreams, m.rejectedConns, m.truncations, m.ignoredMeta, m.inflightWaits)
	}
	return m
}
