package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/wardmesh/ward/authz/decisionlog"
)

// ReadDecisions parses a decision log (JSON lines) keeping entries with
// from <= time < to (zero bounds are open).
func ReadDecisions(r io.Reader, from, to time.Time) ([]decisionlog.Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []decisionlog.Entry
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e decisionlog.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("read decision log line %d: %w", n, err)
		}
		if (!from.IsZero() && e.Time.Before(from)) || (!to.IsZero() && !e.Time.Before(to)) {
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read decision log: %w", err)
	}
	return out, nil
}

// topN bounds the top-denied lists.
const topN = 10

func (b *builder) decisions() {
	if b.in.Decisions == nil {
		return
	}
	d := &Decisions{PerWorkload: []WorkloadStat{}, TopDeniedCallers: []Count{}, TopDeniedPaths: []Count{}}
	per := map[string]*WorkloadStat{}
	callers, paths := map[string]int{}, map[string]int{}
	for _, e := range b.in.Decisions {
		d.observe(e, per, callers, paths)
	}
	for _, s := range per {
		d.PerWorkload = append(d.PerWorkload, *s)
	}
	sort.Slice(d.PerWorkload, func(i, j int) bool { return d.PerWorkload[i].Workload < d.PerWorkload[j].Workload })
	d.TopDeniedCallers, d.TopDeniedPaths = top(callers), top(paths)
	b.r.Decisions = d
	if d.WouldDeny > 0 {
		b.add(Finding{Code: "DECISIONS-DRY-RUN-WOULD-DENY", Severity: Low, Category: "decisions", Object: "decision log",
			Message:  fmt.Sprintf("%d requests would be denied once dry-run policies are enforced", d.WouldDeny),
			Controls: []string{"NIST-800-207-T4", "PCI-DSS-10"}})
	}
}

func (d *Decisions) observe(e decisionlog.Entry, per map[string]*WorkloadStat, callers, paths map[string]int) {
	d.Total++
	if d.From.IsZero() || e.Time.Before(d.From) {
		d.From = e.Time.UTC()
	}
	if e.Time.After(d.To) {
		d.To = e.Time.UTC()
	}
	s, ok := per[e.Workload]
	if !ok {
		s = &WorkloadStat{Workload: e.Workload}
		per[e.Workload] = s
	}
	if e.Error != "" {
		d.Errors++
	}
	if e.Audit {
		d.Audited++
	}
	if e.ShadowAllowed != nil && !*e.ShadowAllowed {
		d.WouldDeny++
		s.WouldDeny++
	}
	if e.Allowed {
		d.Allowed++
		s.Allowed++
		return
	}
	d.Denied++
	s.Denied++
	caller := e.SourcePrincipal
	if caller == "" {
		caller = "(unauthenticated)"
	}
	callers[caller]++
	if e.Path != "" {
		paths[e.Path]++
	}
}

func top(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for v, n := range m {
		out = append(out, Count{v, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if len(out) > topN {
		out = out[:topN]
	}
	return out
}

// Entry is one decision-log entry (the authz decision log's type).
type Entry = decisionlog.Entry
