package ambient

import (
	"iter"
	"maps"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// onNode reports whether w is an ambient workload placed on node (the
// labels the node proxy enrols by and the CA places by).
func onNode(w *mesh.Workload, node string) bool {
	return w.Ambient() && w.Labels[labelNode] == node && w.Name != ""
}

// labelNode places a WorkloadEntry on a node (ca.LabelNode, which the CA
// places by and the node proxy enrols by; pinned by TestPlacementLabels).
const labelNode = "ward.io/node"

// Local returns the ambient workloads placed on node.
func Local(snap *mesh.Snapshot, node string) []*mesh.Workload {
	var out []*mesh.Workload
	for _, w := range snap.Workloads() {
		if onNode(w, node) {
			out = append(out, w)
		}
	}
	return out
}

// Scope returns the config objects node is served, by type URL:
//   - every WorkloadEntry and ServiceEntry (first version: all addresses
//     in the mesh, so any destination resolves; narrowing to what the
//     node's workloads may dial is a later step);
//   - the PeerAuthentications of the root namespace and of the namespaces
//     of the node's workloads whose selector is empty or matches one of
//     them;
//   - the AuthorizationPolicies that apply to one of the node's workloads
//     (authz.PoliciesFor, the one implementation of "what applies here").
func Scope(snap *mesh.Snapshot, node string) map[string][]*mesh.Config {
	local := Local(snap, node)
	out := map[string][]*mesh.Config{
		mcp.TypeWorkloadEntry: snap.All(mesh.KindWorkloadEntry),
		mcp.TypeServiceEntry:  snap.All(mesh.KindServiceEntry),
	}
	out[mcp.TypePeerAuthentication] = peerAuthentications(snap, local)
	out[mcp.TypeAuthorizationPolicy] = authorizationPolicies(snap, local)
	return out
}

func peerAuthentications(snap *mesh.Snapshot, local []*mesh.Workload) []*mesh.Config {
	root := snap.Mesh().RootNamespace
	out := append([]*mesh.Config(nil), snap.InNamespace(mesh.KindPeerAuthentication, root)...)
	seen := map[string]bool{root: true}
	for _, w := range local {
		if seen[w.Namespace] {
			continue
		}
		seen[w.Namespace] = true
		for _, c := range snap.InNamespace(mesh.KindPeerAuthentication, w.Namespace) {
			if selectsAny(c, local) {
				out = append(out, c)
			}
		}
	}
	return out
}

func selectsAny(c *mesh.Config, local []*mesh.Workload) bool {
	sel, _ := mesh.SelectorOf(c.Spec)
	for _, w := range local {
		if w.Namespace == c.Namespace && sel.Matches(w.Labels) {
			return true
		}
	}
	return false
}

func authorizationPolicies(snap *mesh.Snapshot, local []*mesh.Workload) []*mesh.Config {
	seen := map[*mesh.Config]bool{}
	var out []*mesh.Config
	for _, w := range local {
		for _, c := range authz.PoliciesFor(snap, w.Namespace, w.Labels) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// ShortKind is the kind a node type URL carries.
func ShortKind(url string) string {
	switch url {
	case mcp.TypePeerAuthentication:
		return string(mesh.KindPeerAuthentication)
	case mcp.TypeAuthorizationPolicy:
		return string(mesh.KindAuthorizationPolicy)
	case mcp.TypeWorkloadEntry:
		return string(mesh.KindWorkloadEntry)
	case mcp.TypeServiceEntry:
		return string(mesh.KindServiceEntry)
	}
	return "MeshConfig"
}

func actionOf(c *mesh.Config) string {
	if ap, ok := c.Spec.(*security.AuthorizationPolicy); ok {
		return ap.GetAction().String()
	}
	return ""
}

func mapsKeys[V any](m map[string]V) iter.Seq[string] { return maps.Keys(m) }
