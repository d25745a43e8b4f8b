package agent

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	expiry   prometheus.Gauge
	renewAt  prometheus.Gauge
	roots    prometheus.Gauge
	renewals *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_agent_cert_expiry_timestamp_seconds", Help: "Expiry of the workload certificate being served.",
		}),
		renewAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_agent_cert_renewal_timestamp_seconds", Help: "When the agent will renew the workload certificate.",
		}),
		roots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_agent_bundle_roots", Help: "Roots in the trust bundle the agent serves.",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_agent_renewals_total", Help: "Certificate requests by result (success, failure, rejected).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.expiry, m.renewAt, m.roots, m.renewals} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("agent metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(s *SVID) {
	m.expiry.Set(float64(s.Certs[0].NotAfter.Unix()))
	m.renewAt.Set(float64(s.RenewAt.Unix()))
	m.roots.Set(float64(len(s.Roots)))
}
