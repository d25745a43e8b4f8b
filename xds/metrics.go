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
			Name: "ward_xds_connected_proxies", Help: "Proxies with at least one open xDS stream.",
		}),
		genErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_xds_generate_errors_total", Help: "Generated proxy configs that failed validation and were not pushed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.pushes, m.rejects, m.pushTime, m.convergence, m.connected, m.genErrors)
	}
	return m
}
