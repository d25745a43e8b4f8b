package telemetry

import (
	"fmt"

	telemetryv1 "istio.io/api/telemetry/v1alpha1"

	"github.com/wardmesh/ward/mesh"
)

// Mode is the side of a proxy a listener serves: Client for outbound
// listeners (what the workload calls), Server for inbound listeners and
// gateways (Istio treats a gateway as the server of its calls).
type Mode int

// Modes.
const (
	Client Mode = iota + 1
	Server
)

func (m Mode) String() string {
	if m == Client {
		return "CLIENT"
	}
	return "SERVER"
}

func matches(w telemetryv1.WorkloadMode, m Mode) bool {
	switch w {
	case telemetryv1.WorkloadMode_CLIENT:
		return m == Client
	case telemetryv1.WorkloadMode_SERVER:
		return m == Server
	}
	return true // CLIENT_AND_SERVER, the default
}

// Finding is something the translator could not honour: a provider that
// does not exist or cannot be reached. Telemetry never fails a listener;
// the finding names the object so that operators see why a log is
// missing.
type Finding struct {
	Object  mesh.Key // zero for the mesh config's defaultProviders
	Message string
}

func (f Finding) String() string {
	if f.Object == (mesh.Key{}) {
		return "MeshConfig defaultProviders: " + f.Message
	}
	return f.Object.String() + ": " + f.Message
}

// LogSpec is one access-log provider in effect, with its CEL filter
// ("" = log everything).
type LogSpec struct {
	Provider string
	Filter   string
	// From is the most specific Telemetry that set the provider or its
	// filter (zero for defaultProviders).
	From mesh.Key
}

// logState tracks one provider while levels are folded.
type logState struct {
	on     bool
	filter string
	from   mesh.Key
}

// AccessLogging folds the applicable Telemetry levels into the access-log
// providers in effect for side m. Defaults are meshConfig.defaultProviders
// .accessLogging. Each level's rules that match m apply in order:
//
//   - a rule's providers, or when it names none, every provider in scope,
//     are switched on, or off when disabled is true;
//   - a rule's filter replaces the filter of those providers; a rule
//     without one keeps the inherited filter;
//   - a level whose matching rules name providers narrows the scope to
//     them: broader levels' other providers stop logging (Istio: a
//     lower-level provider list replaces the inherited one).
//
// The result keeps the order in which providers first appear.
func AccessLogging(s *mesh.Snapshot, l Levels, m Mode) []LogSpec {
	var order []string
	state := map[string]*logState{}
	get := func(n string) *logState {
		if st, ok := state[n]; ok {
			return st
		}
		st := &logState{}
		state[n] = st
		order = append(order, n)
		return st
	}
	if d := s.Mesh().DefaultProviders; d != nil {
		for _, n := range d.AccessLogging {
			get(n).on = true
		}
	}
	for _, c := range l.List() {
		rules := logRules(c, m)
		if named := namedProviders(rules); len(named) > 0 {
			for n := range state {
				if !named[n] {
					delete(state, n)
				}
			}
		}
		inScope := inOrder(order, state)
		for _, r := range rules {
			targets := providerNames(r.GetProviders())
			if len(targets) == 0 {
				targets = inScope
			}
			for _, n := range targets {
				st := get(n)
				st.on, st.from = !r.GetDisabled().GetValue(), c.Key()
				if f := r.GetFilter(); f != nil {
					st.filter = f.GetExpression()
				}
			}
		}
	}
	var out []LogSpec
	for _, n := range inOrder(order, state) {
		if st := state[n]; st.on {
			out = append(out, LogSpec{Provider: n, Filter: st.filter, From: st.from})
		}
	}
	return out
}

func logRules(c *mesh.Config, m Mode) []*telemetryv1.AccessLogging {
	t, _ := c.Spec.(*telemetryv1.Telemetry)
	var out []*telemetryv1.AccessLogging
	for _, r := range t.GetAccessLogging() {
		if r != nil && matches(r.GetMatch().GetMode(), m) {
			out = append(out, r)
		}
	}
	return out
}

func namedProviders(rules []*telemetryv1.AccessLogging) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, n := range providerNames(r.GetProviders()) {
			out[n] = true
		}
	}
	return out
}

func providerNames(ps []*telemetryv1.ProviderRef) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.GetName() != "" {
			out = append(out, p.GetName())
		}
	}
	return out
}

// inOrder lists the names of order still present in state.
func inOrder(order []string, state map[string]*logState) []string {
	out := make([]string, 0, len(state))
	for _, n := range order {
		if _, ok := state[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// DefaultSamplingPercentage is the share of requests traced when no
// Telemetry sets randomSamplingPercentage (Istio's default of
// meshConfig.defaultConfig.tracing.sampling).
const DefaultSamplingPercentage = 1.0

// Tracing is the tracing in effect for one side of a proxy.
type Tracing struct {
	Provider             string
	SamplingPercentage   float64
	CustomTags           map[string]*telemetryv1.Tracing_CustomTag
	DisableSpanReporting bool
}

// TracingFor folds the applicable levels into the tracing in effect for
// side m, or nil when no provider is. The provider is the first one named
// by the most specific matching rule that names any (else the first of
// defaultProviders.tracing); sampling and span reporting are overridden
// by more specific rules; custom tags merge by name, the more specific
// winning.
func TracingFor(s *mesh.Snapshot, l Levels, m Mode) *Tracing {
	t := &Tracing{SamplingPercentage: DefaultSamplingPercentage, CustomTags: map[string]*telemetryv1.Tracing_CustomTag{}}
	if d := s.Mesh().DefaultProviders; d != nil && len(d.Tracing) > 0 {
		t.Provider = d.Tracing[0]
	}
	for _, c := range l.List() {
		spec, _ := c.Spec.(*telemetryv1.Telemetry)
		for _, r := range spec.GetTracing() {
			if r == nil || !matches(r.GetMatch().GetMode(), m) {
				continue
			}
			if ns := providerNames(r.GetProviders()); len(ns) > 0 {
				t.Provider = ns[0]
			}
			if v := r.GetRandomSamplingPercentage(); v != nil {
				t.SamplingPercentage = v.GetValue()
			}
			if v := r.GetDisableSpanReporting(); v != nil {
				t.DisableSpanReporting = v.GetValue()
			}
			for k, v := range r.GetCustomTags() {
				t.CustomTags[k] = v
			}
		}
	}
	if t.Provider == "" {
		return nil
	}
	return t
}

// provider resolves a provider name that must be of the kind ok accepts
// (kind reads "an access logging", "a tracing").
func provider(s *mesh.Snapshot, name, kind string, ok func(mesh.TelemetryProviders) bool) (mesh.ExtensionProvider, error) {
	p, found := s.Mesh().TelemetryProvider(name)
	switch {
	case !found:
		return p, fmt.Errorf("provider %q is not defined in meshConfig.extensionProviders", name)
	case !ok(p.TelemetryProviders):
		return p, fmt.Errorf("provider %q is not %s provider", name, kind)
	}
	return p, nil
}
