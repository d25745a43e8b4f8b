package recommend

// Workload is what a selector is chosen from: a workload's namespace,
// service account and labels.
type Workload struct {
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
}

// ignoredLabels are set on every workload by the mesh; they select
// nothing in particular.
var ignoredLabels = map[string]bool{
	"security.istio.io/tlsMode":           true,
	"service.istio.io/canonical-revision": true,
	"pod-template-hash":                   true,
	"version":                             true,
}

// SelectorFrom returns a Config.Selector over ws: the labels every
// workload of the service account carries (minus mesh-wide and
// per-version ones), provided they select no workload of another
// service account in the namespace. Otherwise it answers nil, and the
// service account's rules go to the namespace-wide policy.
func SelectorFrom(ws []Workload) func(ns, sa string) map[string]string {
	return func(ns, sa string) map[string]string {
		var common map[string]string
		for _, w := range ws {
			if w.Namespace != ns || w.ServiceAccount != sa {
				continue
			}
			common = intersect(common, w.Labels)
			if len(common) == 0 {
				return nil
			}
		}
		if len(common) == 0 {
			return nil
		}
		for _, w := range ws {
			if w.Namespace == ns && w.ServiceAccount != sa && selects(common, w.Labels) {
				return nil
			}
		}
		return common
	}
}

// intersect is the labels of l that common has too (all of l's usable
// labels when common is nil).
func intersect(common, l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		if ignoredLabels[k] {
			continue
		}
		if cv, ok := common[k]; common == nil || ok && cv == v {
			out[k] = v
		}
	}
	return out
}

func selects(sel, l map[string]string) bool {
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}
