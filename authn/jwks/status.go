package jwks

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status is the fetch state of one key source, as /debug/jwks shows it.
type Status struct {
	Issuer              string     `json:"issuer"`
	JWKSURI             string     `json:"jwksUri,omitempty"`
	ResolvedURI         string     `json:"resolvedUri,omitempty"`
	Available           bool       `json:"available"`
	KeyIDs              []string   `json:"keyIds"`
	LastSuccess         *time.Time `json:"lastSuccess,omitempty"`
	LastError           string     `json:"lastError,omitempty"`
	LastErrorAt         *time.Time `json:"lastErrorAt,omitempty"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	NextFetch           time.Time  `json:"nextFetch"`
	UsedBy              []string   `json:"usedBy"`
}

// Status returns every tracked source's state, sorted by issuer.
func (r *Resolver) Status() []Status {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Status, 0, len(r.entries))
	for _, e := range r.entries {
		s := Status{Issuer: e.src.Issuer, JWKSURI: e.src.URI, ResolvedURI: e.resolvedURI, Available: e.keys != "",
			KeyIDs: append([]string{}, e.kids...), LastError: e.lastError, ConsecutiveFailures: e.failures,
			NextFetch: e.next, UsedBy: append([]string{}, e.usedBy...)}
		if !e.lastSuccess.IsZero() {
			t := e.lastSuccess
			s.LastSuccess = &t
		}
		if !e.lastErrorAt.IsZero() {
			t := e.lastErrorAt
			s.LastErrorAt = &t
		}
		sort.Strings(s.UsedBy)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Issuer+out[i].JWKSURI < out[j].Issuer+out[j].JWKSURI })
	return out
}

// Handler serves Status as JSON; mount it at /debug/jwks.
func (r *Resolver) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r.Status())
	})
}

type metrics struct {
	fetches     *prometheus.CounterVec
	keys        *prometheus.GaugeVec
	available   *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_jwks_fetch_total",
			Help: "JWKS fetches by issuer and result (success, discovery_error, fetch_error, validate_error)."}, []string{"issuer", "jwks_uri", "result"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ward_jwks_keys",
			Help: "Keys currently served for an issuer."}, []string{"issuer", "jwks_uri"}),
		available: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ward_jwks_available",
			Help: "1 when an issuer has keys, 0 while its tokens are rejected for lack of keys."}, []string{"issuer", "jwks_uri"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ward_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful fetch for an issuer."}, []string{"issuer", "jwks_uri"}),
	}
	if reg != nil {
		reg.MustRegister(m.fetches, m.keys, m.available, m.lastSuccess)
	}
	return m
}

// Metrics are labelled by issuer and jwks_uri ("" = OIDC discovery).
func (m *metrics) fetched(src source, result string, e *entry) {
	m.fetches.WithLabelValues(src.Issuer, src.URI, result).Inc()
	m.keys.WithLabelValues(src.Issuer, src.URI).Set(float64(len(e.kids)))
	avail := 0.0
	if e.keys != "" {
		avail = 1
	}
	m.available.WithLabelValues(src.Issuer, src.URI).Set(avail)
	if !e.lastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(src.Issuer, src.URI).Set(float64(e.lastSuccess.Unix()))
	}
}

func (m *metrics) forget(src source) {
	m.keys.DeleteLabelValues(src.Issuer, src.URI)
	m.available.DeleteLabelValues(src.Issuer, src.URI)
	m.lastSuccess.DeleteLabelValues(src.Issuer, src.URI)
}
