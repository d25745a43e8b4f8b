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
	// Background preparation of a new snapshot (warm.go).
	prepare  prometheus.Histogram // per snapshot, until every known workload is prepared
	prepared prometheus.Counter   // workloads prepared in the background
	inline   prometheus.Counter   // checks that prepared their workload themselves
	previous prometheus.Counter   // checks decided by the previous snapshot while the new one prepared
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
		prepare: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_authz_prepare_seconds", Help: "Time to prepare a new snapshot's policies for every known workload before it decides.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16),
		}),
		prepared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_authz_prepared_workloads_total", Help: "Workloads whose policies were prepared in the background after a snapshot change.",
		}),
		inline: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_authz_inline_prepares_total", Help: "Checks that found their workload's policies unprepared and prepared them on the request path.",
		}),
		previous: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_authz_previous_policy_checks_total", Help: "Checks decided by the previous snapshot's policies while the new snapshot was being prepared.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.prepare, m.prepared, m.inline, m.previous} {
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
