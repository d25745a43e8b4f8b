package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry/als"
)

// edgeKey identifies a TrafficEdge.
type edgeKey struct {
	source, destination, protocol string
	mtls                          bool
}

// traffic builds the observed-traffic section from the call records.
// It runs after authz (it needs which workloads are open) and before
// readiness (observed plaintext blocks STRICT).
func (b *builder) traffic() {
	if b.in.Calls == nil {
		return
	}
	t := &Traffic{}
	edges := map[edgeKey]*TrafficEdge{}
	policies := map[edgeKey]map[string]bool{}
	for _, r := range b.in.Calls {
		t.observe(r)
		k := edgeKey{sourceLabel(r), destinationLabel(r), r.Protocol, r.MTLS}
		e := edges[k]
		if e == nil {
			e = &TrafficEdge{Source: k.source, Destination: k.destination, Protocol: k.protocol, MTLS: k.mtls, FirstSeen: r.Time.UTC(), LastSeen: r.Time.UTC()}
			edges[k], policies[k] = e, map[string]bool{}
		}
		addToEdge(e, r)
		if r.Policy != "" {
			policies[k][r.Policy] = true
		}
	}
	for k, e := range edges {
		for p := range policies[k] {
			e.Policies = append(e.Policies, p)
		}
		sort.Strings(e.Policies)
		t.Edges = append(t.Edges, *e)
	}
	sortEdges(t.Edges)
	b.r.Traffic = t
	b.trafficViews(t)
	b.trafficFindings(t)
}

func (t *Traffic) observe(r als.Record) {
	t.Calls++
	if t.From.IsZero() || r.Time.Before(t.From) {
		t.From = r.Time.UTC()
	}
	if r.Time.After(t.To) {
		t.To = r.Time.UTC()
	}
	if r.Denied {
		t.Denied++
	} else {
		t.Allowed++
	}
	if !r.MTLS {
		t.Plaintext++
	}
	if r.Destination == "" {
		t.Unattributed++
	}
}

func addToEdge(e *TrafficEdge, r als.Record) {
	if r.Denied {
		e.Denied++
	} else {
		e.Allowed++
	}
	if r.Time.Before(e.FirstSeen) {
		e.FirstSeen = r.Time.UTC()
	}
	if r.Time.After(e.LastSeen) {
		e.LastSeen = r.Time.UTC()
	}
}

func sourceLabel(r als.Record) string {
	switch {
	case r.Source != "":
		return r.Source
	case r.SourceAddress != "":
		return "plaintext " + r.SourceAddress
	}
	return "plaintext"
}

func destinationLabel(r als.Record) string {
	if r.Destination != "" {
		return r.Destination
	}
	return r.Cluster
}

func sortEdges(es []TrafficEdge) {
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return !a.MTLS && b.MTLS
	})
}

// trafficViews derives the per-namespace, per-identity, denied and open
// views from the edges (already sorted).
func (b *builder) trafficViews(t *Traffic) {
	t.PlaintextByNamespace, t.Callers, t.DeniedCalls, t.OpenAllowed = []NamespacePlaintext{}, []IdentityCallers{}, []TrafficEdge{}, []TrafficEdge{}
	plain := map[string]*NamespacePlaintext{}
	callers := map[string]map[string]int{}
	open := b.openIdentities()
	for _, e := range t.Edges {
		ns, _, ok := identityParts(e.Destination)
		if !ok {
			continue // unattributed: no destination workload
		}
		if !e.MTLS {
			np := plain[ns]
			if np == nil {
				np = &NamespacePlaintext{Namespace: ns}
				plain[ns] = np
			}
			np.Calls += e.Allowed + e.Denied
			np.Edges = append(np.Edges, e)
		}
		if callers[e.Destination] == nil {
			callers[e.Destination] = map[string]int{}
		}
		callers[e.Destination][e.Source] += e.Allowed + e.Denied
		if e.Denied > 0 {
			t.DeniedCalls = append(t.DeniedCalls, e)
		}
		if e.Allowed > 0 && open[e.Destination] {
			t.OpenAllowed = append(t.OpenAllowed, e)
		}
	}
	for _, ns := range sortedKeys(plain) {
		t.PlaintextByNamespace = append(t.PlaintextByNamespace, *plain[ns])
	}
	for _, d := range sortedKeys(callers) {
		t.Callers = append(t.Callers, IdentityCallers{Destination: d, Workloads: b.workloadsOf(d), Callers: sortedCounts(callers[d])})
	}
}

// openIdentities are the identities all of whose workloads in the config
// have no enforced ALLOW policy.
func (b *builder) openIdentities() map[string]bool {
	openByName := map[string]bool{}
	for _, a := range b.r.Authz {
		openByName[a.Namespace+"/"+a.Workload] = a.Open
	}
	out := map[string]bool{}
	for _, w := range workloads(b.snap) {
		if w.ServiceAccount == "" {
			continue
		}
		id := identityOf(b.snap, w)
		o, seen := out[id]
		out[id] = openByName[objName(w)] && (o || !seen)
	}
	return out
}

// workloadsOf names the config's workloads with identity id.
func (b *builder) workloadsOf(id string) []string {
	var out []string
	for _, w := range workloads(b.snap) {
		if w.ServiceAccount != "" && identityOf(b.snap, w) == id {
			out = append(out, objName(w))
		}
	}
	return out
}

func identityOf(snap *mesh.Snapshot, w *mesh.Workload) string {
	return w.Identity(snap.Mesh().TrustDomain).String()
}

// identityParts splits spiffe://<td>/ns/<ns>/sa/<sa>.
func identityParts(id string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

func sortedCounts(m map[string]int) []Count {
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
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// trafficFindings: observed plaintext per namespace, calls allowed only
// because no ALLOW policy applies, and denials.
func (b *builder) trafficFindings(t *Traffic) {
	for _, np := range t.PlaintextByNamespace {
		b.add(Finding{Code: "TRAFFIC-PLAINTEXT", Severity: Medium, Category: "observed traffic", Object: "namespace " + np.Namespace,
			Message:  fmt.Sprintf("%d plaintext calls observed into the namespace (%d edges): not ready for STRICT", np.Calls, len(np.Edges)),
			Controls: []string{"NIST-800-207-T2", "PCI-DSS-4.2.1", "SOC2-CC6.7"}})
	}
	open := map[string]int{}
	for _, e := range t.OpenAllowed {
		open[e.Destination] += e.Allowed
	}
	for _, d := range sortedKeys(open) {
		b.add(Finding{Code: "TRAFFIC-ALLOWED-WITHOUT-POLICY", Severity: Medium, Category: "observed traffic", Object: d,
			Message:  fmt.Sprintf("%d calls allowed only because no ALLOW policy applies (ward authz recommend proposes one)", open[d]),
			Controls: []string{"NIST-800-207-T3", "NIST-800-207-T4", "SOC2-CC6.1"}})
	}
	if t.Denied > 0 {
		b.add(Finding{Code: "TRAFFIC-DENIED", Severity: Info, Category: "observed traffic", Object: "call records",
			Message:  fmt.Sprintf("%d denied calls observed on %d edges", t.Denied, len(t.DeniedCalls)),
			Controls: []string{"NIST-800-207-T4", "PCI-DSS-10"}})
	}
}
