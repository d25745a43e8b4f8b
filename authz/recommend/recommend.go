package recommend

import (
	"fmt"
	"time"
)

// Call is one observed call, as the access-log service records it
// (telemetry/als.Record carries these fields).
type Call struct {
	Time time.Time
	// Source and Destination are SPIFFE IDs; Source is empty for a
	// plaintext call.
	Source, Destination string
	SourceAddress       string
	// Port is the destination workload's port; 0 when unknown.
	Port     uint32
	Protocol string // "http" or "tcp"
	Method   string
	Path     string
	Denied   bool
}

// Config tunes a recommendation.
type Config struct {
	// CollapseAt is how many distinct paths under one parent make the
	// parent a prefix (`/parent/*`); default 3. Below it, paths stay exact.
	CollapseAt int
	// Selector maps a destination workload (namespace, service account)
	// to the labels its policy selects; nil or an empty answer gives a
	// policy for the whole namespace, which then holds the rules of every
	// workload without a selector there.
	Selector func(namespace, serviceAccount string) map[string]string
	// DryRun annotates every policy with istio.io/dry-run: "true".
	DryRun bool
}

// Evidence is what one rule or policy rests on.
type Evidence struct {
	Calls     uint64
	FirstSeen time.Time
	LastSeen  time.Time
}

func (e *Evidence) add(t time.Time) {
	e.Calls++
	if e.FirstSeen.IsZero() || t.Before(e.FirstSeen) {
		e.FirstSeen = t
	}
	if t.After(e.LastSeen) {
		e.LastSeen = t
	}
}

func (e *Evidence) merge(o Evidence) {
	if o.Calls == 0 {
		return
	}
	e.Calls += o.Calls
	if e.FirstSeen.IsZero() || o.FirstSeen.Before(e.FirstSeen) {
		e.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(e.LastSeen) {
		e.LastSeen = o.LastSeen
	}
}

// String is "<n> calls, <first> … <last>" in UTC.
func (e Evidence) String() string {
	return fmt.Sprintf("%d calls, %s … %s", e.Calls, e.FirstSeen.UTC().Format(time.RFC3339), e.LastSeen.UTC().Format(time.RFC3339))
}

// Operation is one `to.operation`: every combination of its ports,
// methods and paths was seen (or is covered by a collapsed path).
type Operation struct {
	Ports   []string
	Methods []string
	Paths   []string
}

// Rule allows its sources the operations; no operation means any
// (TCP to an unknown port).
type Rule struct {
	Principals []string // mTLS sources
	IPBlocks   []string // plaintext sources, by address
	AnySource  bool     // plaintext without a known address
	To         []Operation
	Evidence   Evidence
}

// Policy is the recommendation for one destination workload (or a whole
// namespace, when Selector is empty).
type Policy struct {
	Name      string
	Namespace string
	Selector  map[string]string
	// Workloads are the destination principals the policy covers.
	Workloads []string
	Rules     []Rule
	Evidence  Evidence
}

// Result is a recommendation and what it left out.
type Result struct {
	Policies []Policy
	// Window is the evidence's time range (every call read).
	Window Evidence
	// Denied counts denied calls: they are not allowed by any proposal.
	Denied uint64
	// Skipped counts allowed calls with no destination principal (a
	// client-side record): no workload to attach a policy to.
	Skipped uint64
}
