package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/mesh"
)

// metrics are the node proxy's Prometheus series. Label values are
// bounded: directions, transports and results are fixed sets; a deny's
// rule is a policy rule name or a reason; workloads are the node's own.
type metrics struct {
	conns  *prometheus.CounterVec // direction, transport, result
	bytes  *prometheus.CounterVec // direction (outbound = sent by the workload)
	denies *prometheus.CounterVec // namespace, rule
	expiry *prometheus.GaugeVec   // namespace, name
	opaque *prometheus.CounterVec // namespace
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_node_connections_total", Help: "Connections handled, by direction (inbound, outbound), transport (hbone, plaintext) and result (allowed, denied, error).",
		}, []string{"direction", "transport", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_node_bytes_total", Help: "Bytes proxied for enrolled workloads, by direction (sent, received).",
		}, []string{"direction"}),
		denies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_node_denies_total", Help: "Inbound connections refused, by destination namespace and the deciding rule (or reason).",
		}, []string{"namespace", "rule"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ward_node_cert_expiry_timestamp_seconds", Help: "Expiry of each enrolled workload's certificate.",
		}, []string{"namespace", "name"}),
		opaque: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_node_source_not_preserved_total", Help: "Inbound connections passed to the application from the pod's own address because the kernel refused IP_TRANSPARENT, by destination namespace.",
		}, []string{"namespace"}),
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.conns, m.bytes, m.denies, m.expiry, m.opaque} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("node metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) decided(d Decision) {
	result := "allowed"
	if !d.Verdict.Allowed {
		result = "denied"
		rule := string(d.Verdict.Reason)
		if d.Verdict.Decision != nil && d.Verdict.Decision.Rule != "" {
			rule = d.Verdict.Decision.Rule
		}
		m.denies.WithLabelValues(d.Workload.Namespace, rule).Inc()
	}
	m.conns.WithLabelValues("inbound", d.Transport, result).Inc()
}

func (m *metrics) outbound(transport string, err error) {
	result := "allowed"
	if err != nil {
		result = "error"
	}
	m.conns.WithLabelValues("outbound", transport, result).Inc()
}

func (m *metrics) spliced(sent, received int64) {
	m.bytes.WithLabelValues("sent").Add(float64(sent))
	m.bytes.WithLabelValues("received").Add(float64(received))
}

func (m *metrics) certificate(k mesh.Key, s *svid) {
	m.expiry.WithLabelValues(k.Namespace, k.Name).Set(float64(s.cert.Leaf.NotAfter.Unix()))
}

func (m *metrics) left(k mesh.Key) { m.expiry.DeleteLabelValues(k.Namespace, k.Name) }

func (m *metrics) sourceLost(k mesh.Key) { m.opaque.WithLabelValues(k.Namespace).Inc() }
