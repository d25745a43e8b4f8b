package authz

import (
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// LabelGatewayName marks the pods of a Kubernetes Gateway; targetRefs of
// kind Gateway select workloads by it.
const LabelGatewayName = "gateway.networking.k8s.io/gateway-name"

// PoliciesFor returns the AuthorizationPolicies that apply to a workload in
// namespace ns with labels l: policies of the root namespace (whose
// selectors apply in every namespace) followed by those of ns, each group
// sorted by name. A policy applies when its selector matches l (no selector
// and no targetRefs = the whole namespace) or when one of its targetRefs
// names a Gateway or ServiceEntry the workload belongs to. This is the one
// implementation of "what applies here?" used by the compiler, the ext_authz
// server, `ward authz check` and the audit.
func PoliciesFor(snap *mesh.Snapshot, ns string, l mesh.Labels) []*mesh.Config {
	root := snap.Mesh().RootNamespace
	var out []*mesh.Config
	for _, c := range snap.InNamespace(mesh.KindAuthorizationPolicy, root) {
		if applies(snap, c, ns, l) {
			out = append(out, c)
		}
	}
	if ns == root {
		return out
	}
	for _, c := range snap.InNamespace(mesh.KindAuthorizationPolicy, ns) {
		if applies(snap, c, ns, l) {
			out = append(out, c)
		}
	}
	return out
}

func applies(snap *mesh.Snapshot, c *mesh.Config, ns string, l mesh.Labels) bool {
	ap, ok := c.Spec.(*security.AuthorizationPolicy)
	if !ok {
		return false
	}
	refs := targetRefs(ap)
	if len(refs) == 0 {
		return mesh.Selector(ap.GetSelector().GetMatchLabels()).Matches(l)
	}
	for _, r := range refs {
		if targets(snap, c, r, ns, l) {
			return true
		}
	}
	return false
}

func targetRefs(ap *security.AuthorizationPolicy) []*typeRef {
	var out []*typeRef
	if r := ap.GetTargetRef(); r != nil {
		out = append(out, &typeRef{r.GetGroup(), r.GetKind(), r.GetName(), r.GetNamespace()})
	}
	for _, r := range ap.GetTargetRefs() {
		out = append(out, &typeRef{r.GetGroup(), r.GetKind(), r.GetName(), r.GetNamespace()})
	}
	return out
}

type typeRef struct{ group, kind, name, namespace string }

// targets reports whether reference r of policy c selects the workload.
// Gateways are matched by the gateway-name label in the policy's namespace;
// ServiceEntries by membership. Service and GatewayClass references attach
// to waypoints and gateway classes, never to sidecar or proxyless
// workloads, exactly as in Istio.
func targets(snap *mesh.Snapshot, c *mesh.Config, r *typeRef, ns string, l mesh.Labels) bool {
	if c.Namespace != ns {
		return false
	}
	switch r.kind {
	case "Gateway":
		return l[LabelGatewayName] == r.name
	case "ServiceEntry":
		for _, svc := range snap.ServicesForWorkload(ns, l) {
			if svc.Source.Kind == mesh.KindServiceEntry && svc.Source.Name == r.name {
				return true
			}
		}
	}
	return false
}
