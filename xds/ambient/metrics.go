package ambient

import "github.com/prometheus/client_golang/prometheus"

// Registerer is where the server's collectors go.
type Registerer = prometheus.Registerer

type metrics struct {
	connected prometheus.Gauge
	pushes    *prometheus.CounterVec
	pushBytes *prometheus.CounterVec
	nacks     *prometheus.CounterVec
}

func newMetrics(reg Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ward_node_xds_connected", Help: "Node proxy delta ADS streams open."}),
		pushes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_node_xds_pushes_total", Help: "Delta responses sent to node proxies, by type."}, []string{"type"}),
		pushBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_node_xds_push_bytes_total", Help: "Encoded bytes of the delta responses sent to node proxies, by type."}, []string{"type"}),
		nacks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_node_xds_rejects_total", Help: "Delta responses node proxies rejected (NACK), by type."}, []string{"type"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.pushes, m.pushBytes, m.nacks)
	}
	return m
}
