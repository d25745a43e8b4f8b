package ca

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDebugAndPhaseMetrics(t *testing.T) {
	clk := &fakeClock{now: t0}
	reg := prometheus.NewRegistry()
	c := newTestCA(t, clk, func(c *Config) { c.Metrics = reg })
	phaseOf := func() string {
		rec := httptest.NewRecorder()
		c.DebugHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/ca", nil))
		var st Status
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("/debug/ca: %v: %s", err, rec.Body)
		}
		if st.TrustDomain != "example.org" || st.Mode != "self-signed" || len(st.Roots) == 0 {
			t.Fatalf("/debug/ca: %+v", st)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "ward_ca_rotation_phase" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() == 1 && m.GetLabel()[0].GetValue() != st.Phase {
					t.Errorf("metric says phase %s, /debug/ca says %s", m.GetLabel()[0].GetValue(), st.Phase)
				}
			}
		}
		return st.Phase
	}
	if p := phaseOf(); p != PhaseStable {
		t.Fatalf("phase %s, want stable", p)
	}
	if err := c.Rotate(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if p := phaseOf(); p != PhaseStaged {
		t.Fatalf("phase %s, want staged", p)
	}
	clk.Advance(time.Hour)
	mustReconcile(t, c)
	if p := phaseOf(); p != PhaseRetiring {
		t.Fatalf("phase %s, want retiring", p)
	}
}
