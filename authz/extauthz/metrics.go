package extauthz

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/authz"
)

// metrics are the server's Prometheus metrics: decisions by verdict and
// reason, and decision latency.
type metrics struct {
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_authz_decisions_total", Help: "Authorization decisions by verdict and reason.",
		}, []string{"allowed", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_authz_decision_seconds", Help: "Time to decide one check request.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("ext_authz: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(d *authz.Decision, took time.Duration) {
	allowed := "false"
	if d.Allowed {
		allowed = "true"
	}
	m.decisions.WithLabelValues(allowed, string(d.Reason)).Inc()
	m.latency.Observe(took.Seconds())
}
