package file

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/mesh"
)

// Status is the source's report for /debug/configz.
type Status struct {
	Version  string            `json:"version"`
	LoadedAt time.Time         `json:"loadedAt"`
	Objects  []ObjectStatus    `json:"objects"`
	Rejected []RejectionStatus `json:"rejected"`
	Ignored  []string          `json:"ignored,omitempty"`
	// Pending lists files changed or removed but not yet stable for the
	// quiet period; their last applied version is still served.
	Pending []string `json:"pending,omitempty"`
}

// ObjectStatus is one served object.
type ObjectStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Source    string `json:"source"`
	// Stale is true when the object's current text is invalid and this, its
	// last good version, is still being served.
	Stale bool `json:"stale,omitempty"`
}

// RejectionStatus is one rejected object or file.
type RejectionStatus struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Source    string `json:"source"`
	Error     string `json:"error"`
	// KeptLastGood is true when a previous good version is still served.
	KeptLastGood bool `json:"keptLastGood"`
}

func newStatus(snap *mesh.Snapshot, res *Result, kept map[mesh.Key]bool, now time.Time) Status {
	st := Status{Version: snap.Version(), LoadedAt: now, Ignored: res.Ignored, Objects: []ObjectStatus{}, Rejected: []RejectionStatus{}}
	for _, k := range snap.Keys() {
		c, _ := snap.Get(k)
		st.Objects = append(st.Objects, ObjectStatus{Kind: string(k.Kind), Namespace: k.Namespace, Name: k.Name, Source: c.Source.String(), Stale: kept[k]})
	}
	for _, rj := range res.Rejected {
		st.Rejected = append(st.Rejected, RejectionStatus{Kind: string(rj.Key.Kind), Namespace: rj.Key.Namespace, Name: rj.Key.Name,
			Source: rj.Source.String(), Error: rj.Err.Error(), KeptLastGood: kept[rj.Key]})
	}
	sort.SliceStable(st.Rejected, func(i, j int) bool { return st.Rejected[i].Source < st.Rejected[j].Source })
	return st
}

type metrics struct {
	reloads  *prometheus.CounterVec
	rejected prometheus.Gauge
	pending  prometheus.Gauge
	stuck    prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, stuck func() float64) (*metrics, error) {
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_config_reloads_total", Help: "Config directory reloads by result (ok, rejected, error).",
		}, []string{"result"}),
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_config_rejected_objects", Help: "Objects or files rejected by the last config load.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_config_pending_files", Help: "Config files changed or removed but not applied yet: not stable for the quiet period.",
		}),
		stuck: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ward_config_reload_stuck", Help: "1 when a config reload has been running, or a seen change waiting for one, for longer than the stuck threshold (/readyz fails too).",
		}, stuck),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reloads, m.rejected, m.pending, m.stuck} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
