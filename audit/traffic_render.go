package audit

import (
	"fmt"
	"strings"
)

const noCalls = "no call records given (--calls)"

func stamp(t interface{ Format(string) string }) string { return t.Format("2006-01-02T15:04:05Z") }

// trafficSection is the evidence window and every edge.
func trafficSection(r *Report) section {
	sec := section{title: "Observed traffic", header: []string{"source", "destination", "protocol", "mtls", "allowed", "denied", "first seen", "last seen"}, empty: noCalls}
	t := r.Traffic
	if t == nil {
		return sec
	}
	sec.title = fmt.Sprintf("Observed traffic (%d calls %s … %s: %d allowed, %d denied, %d plaintext, %d without destination identity)",
		t.Calls, stamp(t.From), stamp(t.To), t.Allowed, t.Denied, t.Plaintext, t.Unattributed)
	sec.empty = "no calls in the records"
	for _, e := range t.Edges {
		sec.rows = append(sec.rows, edgeRow(e))
	}
	return sec
}

func edgeRow(e TrafficEdge) []string {
	return []string{e.Source, e.Destination, e.Protocol, yesno(e.MTLS), itoa(e.Allowed), itoa(e.Denied), stamp(e.FirstSeen), stamp(e.LastSeen)}
}

// trafficPlaintextSection is the observed STRICT-readiness list.
func trafficPlaintextSection(r *Report) section {
	sec := section{title: "Observed plaintext per namespace (STRICT readiness)", header: []string{"namespace", "source", "destination", "protocol", "calls", "last seen"}, empty: noCalls}
	if r.Traffic == nil {
		return sec
	}
	sec.empty = "no plaintext calls observed"
	for _, np := range r.Traffic.PlaintextByNamespace {
		for _, e := range np.Edges {
			sec.rows = append(sec.rows, []string{np.Namespace, e.Source, e.Destination, e.Protocol, itoa(e.Allowed + e.Denied), stamp(e.LastSeen)})
		}
	}
	return sec
}

func trafficCallersSection(r *Report) section {
	sec := section{title: "Observed callers per identity", header: []string{"destination", "workloads", "callers (calls)"}, empty: noCalls}
	if r.Traffic == nil {
		return sec
	}
	sec.empty = "no calls to a known identity"
	for _, c := range r.Traffic.Callers {
		var cs []string
		for _, n := range c.Callers {
			cs = append(cs, fmt.Sprintf("%s (%d)", n.Value, n.Count))
		}
		sec.rows = append(sec.rows, []string{c.Destination, list(c.Workloads), strings.Join(cs, ", ")})
	}
	return sec
}

func trafficDeniedSection(r *Report) section {
	sec := section{title: "Observed denied calls", header: []string{"source", "destination", "protocol", "denied", "policies", "last seen"}, empty: noCalls}
	if r.Traffic == nil {
		return sec
	}
	sec.empty = "no denied calls observed"
	for _, e := range r.Traffic.DeniedCalls {
		sec.rows = append(sec.rows, []string{e.Source, e.Destination, e.Protocol, itoa(e.Denied), list(e.Policies), stamp(e.LastSeen)})
	}
	return sec
}

func trafficOpenSection(r *Report) section {
	sec := section{title: "Observed calls allowed only because no ALLOW policy applies", header: []string{"source", "destination", "protocol", "mtls", "allowed", "last seen"}, empty: noCalls}
	if r.Traffic == nil {
		return sec
	}
	sec.empty = "none: every called workload has an enforced ALLOW policy"
	for _, e := range r.Traffic.OpenAllowed {
		sec.rows = append(sec.rows, []string{e.Source, e.Destination, e.Protocol, yesno(e.MTLS), itoa(e.Allowed), stamp(e.LastSeen)})
	}
	return sec
}
