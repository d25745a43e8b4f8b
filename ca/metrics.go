package ca

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	csrs         *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	latency      prometheus.Histogram
	rootExpiry   *prometheus.GaugeVec
	chainExpiry  prometheus.Gauge
	phase        *prometheus.GaugeVec
	bundleRoots  prometheus.Gauge
	recordErrors prometheus.Counter
	rateLimited  *prometheus.CounterVec
	suppressed   prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		csrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_ca_csr_total", Help: "Certificate signing requests by result (issued, invalid, unauthenticated, rate_limited, error).",
		}, []string{"result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_ca_auth_failures_total", Help: "Failed caller authentications by method.",
		}, []string{"method"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_ca_issuance_duration_seconds", Help: "Time from request to signed chain for issued certificates.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		rootExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ward_ca_root_expiry_timestamp_seconds", Help: "Expiry of each root in the trust bundle.",
		}, []string{"serial", "signing"}),
		chainExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_ca_chain_expiry_timestamp_seconds", Help: "Earliest expiry along the signing chain; caps every leaf.",
		}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ward_ca_rotation_phase", Help: "1 for the current root rotation phase.",
		}, []string{"phase"}),
		bundleRoots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_ca_bundle_roots", Help: "Number of roots in the trust bundle.",
		}),
		recordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_ca_issuance_record_errors_total", Help: "Issued certificates whose issuance record could not be written.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_ca_rate_limited_total", Help: "CSRs answered RESOURCE_EXHAUSTED, by the limit hit (global, unauthenticated, concurrency, identity, source).",
		}, []string{"limit"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ward_ca_log_lines_suppressed_total", Help: "Warnings about failed or refused CSRs not logged because of the log rate limit.",
		}),
	}
	for _, c := range []prometheus.Collector{m.csrs, m.authFailures, m.latency, m.rootExpiry, m.chainExpiry, m.phase, m.bundleRoots, m.recordErrors, m.rateLimited, m.suppressed} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("ca metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observeAuthority(a *authority, phase string) {
	m.rootExpiry.Reset()
	for _, r := range a.roots {
		signing := fmt.Sprint(r.Equal(a.signingRoot))
		m.rootExpiry.WithLabelValues(r.SerialNumber.Text(16), signing).Set(float64(r.NotAfter.Unix()))
	}
	m.chainExpiry.Set(float64(a.notAfter.Unix()))
	m.bundleRoots.Set(float64(len(a.roots)))
	for _, p := range []string{PhaseStable, PhaseStaged, PhaseRetiring, PhasePlugin} {
		v := 0.0
		if p == phase {
			v = 1
		}
		m.phase.WithLabelValues(p).Set(v)
	}
}
