package telemetry

import (
	"fmt"

	telemetryv1 "istio.io/api/telemetry/v1alpha1"

	"github.com/wardmesh/ward/mesh"
)

// Analyze reports every provider reference Ward cannot honour, wherever
// it is written: in a Telemetry (with the field path) or in the mesh
// config's defaultProviders. A provider must be defined, be of the kind
// its section needs, and its collector service must be in the registry.
// The translator reports the same problems per proxy (AccessLogs,
// HTTPTracing); this is the static view for `ward analyze`.
func Analyze(s *mesh.Snapshot) []Finding {
	var out []Finding
	check := func(obj mesh.Key, path, name, kind string, ok func(mesh.TelemetryProviders) bool) {
		if msg := checkProvider(s, name, kind, ok); msg != "" {
			out = append(out, Finding{Object: obj, Message: path + ": " + msg})
		}
	}
	for _, c := range s.All(mesh.KindTelemetry) {
		t, _ := c.Spec.(*telemetryv1.Telemetry)
		for i, r := range t.GetAccessLogging() {
			for j, p := range r.GetProviders() {
				check(c.Key(), fmt.Sprintf("spec.accessLogging[%d].providers[%d]", i, j), p.GetName(), "an access logging", mesh.TelemetryProviders.IsAccessLog)
			}
		}
		for i, r := range t.GetTracing() {
			for j, p := range r.GetProviders() {
				check(c.Key(), fmt.Sprintf("spec.tracing[%d].providers[%d]", i, j), p.GetName(), "a tracing", mesh.TelemetryProviders.IsTracing)
			}
		}
		for i, r := range t.GetMetrics() {
			for j, p := range r.GetProviders() {
				check(c.Key(), fmt.Sprintf("spec.metrics[%d].providers[%d]", i, j), p.GetName(), "a metrics", mesh.TelemetryProviders.IsMetrics)
			}
		}
	}
	if d := s.Mesh().DefaultProviders; d != nil {
		for i, n := range d.AccessLogging {
			check(mesh.Key{}, fmt.Sprintf("spec.defaultProviders.accessLogging[%d]", i), n, "an access logging", mesh.TelemetryProviders.IsAccessLog)
		}
		for i, n := range d.Tracing {
			check(mesh.Key{}, fmt.Sprintf("spec.defaultProviders.tracing[%d]", i), n, "a tracing", mesh.TelemetryProviders.IsTracing)
		}
	}
	return out
}

func checkProvider(s *mesh.Snapshot, name, kind string, ok func(mesh.TelemetryProviders) bool) string {
	ep, err := provider(s, name, kind, ok)
	if err != nil {
		return err.Error()
	}
	if svc, port := collectorOf(ep); svc != "" {
		if _, err := LookupCollector(s, svc, port); err != nil {
			return fmt.Sprintf("provider %q: %v", name, err)
		}
	}
	return ""
}
