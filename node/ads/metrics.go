package ads

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	synced     prometheus.Gauge
	updates    *prometheus.CounterVec
	resources  *prometheus.GaugeVec
	reconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		synced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ward_node_config_synced",
			Help: "1 once the node proxy applied its first complete config from the control plane (before that it serves nothing)."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_node_config_updates_total",
			Help: "Config responses from the control plane, by type and result (applied: ACKed; rejected: NACKed, previous config kept)."}, []string{"type", "result"}),
		resources: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ward_node_config_resources",
			Help: "Config objects the node proxy holds, by type."}, []string{"type"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_node_config_reconnects_total",
			Help: "Config streams to the control plane that ended and were retried."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.synced, m.updates, m.resources, m.reconnects} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
