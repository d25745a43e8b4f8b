package telemetry

import (
	"sort"

	telemetryv1 "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// LabelGatewayName marks the pods of a Kubernetes Gateway; targetRefs of
// kind Gateway select proxies by it.
const LabelGatewayName = "gateway.networking.k8s.io/gateway-name"

// Levels are the Telemetry objects that apply to one proxy, from the
// broadest to the most specific; any may be nil. A more specific level
// overrides a broader one.
type Levels struct {
	// Root is the mesh-wide Telemetry: the oldest one in the root
	// namespace without selector or targetRefs.
	Root *mesh.Config
	// Namespace is the oldest Telemetry in the proxy's namespace without
	// selector or targetRefs (nil in the root namespace: that is Root).
	Namespace *mesh.Config
	// Workload is the oldest Telemetry in the proxy's namespace whose
	// selector matches the proxy's labels or whose targetRefs name its
	// Gateway or a ServiceEntry it belongs to.
	Workload *mesh.Config
}

// List returns the set levels, broadest first.
func (l Levels) List() []*mesh.Config {
	var out []*mesh.Config
	for _, c := range []*mesh.Config{l.Root, l.Namespace, l.Workload} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Applicable returns the Telemetry objects that apply to p, as Istio
// chooses them. It is the one implementation of "which Telemetry applies
// here" for the translator, the fingerprint and the CLI.
func Applicable(s *mesh.Snapshot, p *mesh.Proxy) Levels {
	root := s.Mesh().RootNamespace
	l := Levels{Root: namespaceWide(s, root)}
	if p.Namespace != root {
		l.Namespace = namespaceWide(s, p.Namespace)
	}
	for _, c := range byAge(s.InNamespace(mesh.KindTelemetry, p.Namespace)) {
		if t, ok := c.Spec.(*telemetryv1.Telemetry); ok && !wide(t) && selects(s, c, t, p) {
			l.Workload = c
			break
		}
	}
	return l
}

func namespaceWide(s *mesh.Snapshot, ns string) *mesh.Config {
	for _, c := range byAge(s.InNamespace(mesh.KindTelemetry, ns)) {
		if t, ok := c.Spec.(*telemetryv1.Telemetry); ok && wide(t) {
			return c
		}
	}
	return nil
}

// byAge orders configs by Istio's conflict rule (oldest first).
func byAge(list []*mesh.Config) []*mesh.Config {
	out := append([]*mesh.Config(nil), list...)
	sort.SliceStable(out, func(i, j int) bool { return mesh.Older(out[i], out[j]) })
	return out
}

func wide(t *telemetryv1.Telemetry) bool {
	return t.GetSelector() == nil && t.GetTargetRef() == nil && len(t.GetTargetRefs()) == 0
}

// selects reports whether a workload-level Telemetry picks proxy p: by
// selector, or by a targetRef to the proxy's Gateway or to a ServiceEntry
// it belongs to. References to a Service attach to waypoints, never to
// sidecars or gateways, as in Istio (and authz.PoliciesFor).
func selects(s *mesh.Snapshot, c *mesh.Config, t *telemetryv1.Telemetry, p *mesh.Proxy) bool {
	if sel := t.GetSelector(); sel != nil {
		return mesh.Selector(sel.GetMatchLabels()).Matches(p.Labels)
	}
	refs := append([]*typev1beta1.PolicyTargetReference{t.GetTargetRef()}, t.GetTargetRefs()...)
	for _, r := range refs {
		if r == nil {
			continue
		}
		if r.GetNamespace() != "" && r.GetNamespace() != c.Namespace {
			continue
		}
		switch r.GetKind() {
		case "Gateway":
			if p.Type == mesh.ProxyRouter && p.Labels[LabelGatewayName] == r.GetName() {
				return true
			}
		case "ServiceEntry":
			for _, svc := range s.ServicesForWorkload(p.Namespace, p.Labels) {
				if svc.Source.Kind == mesh.KindServiceEntry && svc.Source.Name == r.GetName() {
					return true
				}
			}
		}
	}
	return false
}
