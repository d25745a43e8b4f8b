package schema

import "github.com/wardmesh/ward/mesh"

// Some of Istio's rules tell an empty list or map apart from an absent
// one ("from: []" is an error, no "from" is not). Protobuf cannot: both
// decode to nil. checkRaw applies those rules to the generic document
// before it becomes a message.
func checkRaw(kind mesh.Kind, spec any, e *errs) {
	obj, _ := spec.(map[string]any)
	switch kind {
	case mesh.KindAuthorizationPolicy:
		rules, _ := obj["rules"].([]any)
		for i, r := range rules {
			rule, _ := r.(map[string]any)
			for _, f := range []string{"from", "to"} {
				if l, ok := rule[f].([]any); ok && len(l) == 0 {
					e.add(idx("spec.rules", i)+"."+f, "%s must not be empty when set; remove it to match any %s", f, map[string]string{"from": "source", "to": "operation"}[f])
				}
			}
		}
	case mesh.KindPeerAuthentication:
		if m, ok := obj["portLevelMtls"].(map[string]any); ok && len(m) == 0 {
			e.add("spec.portLevelMtls", "portLevelMtls, if set, must have at least one port")
		}
	}
}
