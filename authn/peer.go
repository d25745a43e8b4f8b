package authn

import (
	"fmt"
	"sort"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// Level is the scope a PeerAuthentication applies at.
type Level string

// PeerAuthentication levels, widest first.
const (
	LevelMesh      Level = "mesh"      // root namespace, no selector
	LevelNamespace Level = "namespace" // any other namespace, no selector
	LevelWorkload  Level = "workload"  // a selector, outside the root namespace
)

// PeerPolicy is the effective PeerAuthentication of one workload: the
// result of Istio's composition algorithm plus what it chose and ignored.
type PeerPolicy struct {
	// Mode is the workload-wide mode; never ModeUnset.
	Mode Mode
	// PerPort maps a workload (target) port to its mode, from the winning
	// workload-level policy's portLevelMtls (UNSET there resolves to Mode).
	PerPort map[uint32]Mode
	// Mesh, Namespace and Workload are the winning policy at each level,
	// nil where none applies.
	Mesh, Namespace, Workload *mesh.Config
	// Ignored lists the policies that matched but lost, with the reason.
	Ignored []Finding
}

// ModeFor returns the effective mode on a workload port: the port-level
// setting if the winning workload policy has one for that port, else the
// workload mode. Ports that no service declares are treated the same way
// (Istio builds per-port passthrough chains for port-level settings).
func (p PeerPolicy) ModeFor(port uint32) Mode {
	if m, ok := p.PerPort[port]; ok {
		return m
	}
	return p.Mode
}

// Ports returns the ports with a port-level setting, sorted.
func (p PeerPolicy) Ports() []uint32 {
	out := make([]uint32, 0, len(p.PerPort))
	for port := range p.PerPort {
		out = append(out, port)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// EffectiveMode is the one answer to "which mTLS mode applies to this
// workload port?" used by the translators, `ward audit` and
// `ward proxy-config`.
func EffectiveMode(snap *mesh.Snapshot, namespace string, labels mesh.Labels, port uint32) Mode {
	return PeerPolicyFor(snap, namespace, labels).ModeFor(port)
}

// PeerPolicyFor computes the effective PeerAuthentication for a workload
// in namespace with labels, from the snapshot's policies in the root
// namespace and in the workload's namespace.
func PeerPolicyFor(snap *mesh.Snapshot, namespace string, labels mesh.Labels) PeerPolicy {
	root := snap.Mesh().RootNamespace
	cands := snap.InNamespace(mesh.KindPeerAuthentication, root)
	if namespace != root {
		cands = append(append([]*mesh.Config(nil), cands...), snap.InNamespace(mesh.KindPeerAuthentication, namespace)...)
	}
	return ComposePeer(root, namespace, labels, cands)
}

// ComposePeer is Istio's algorithm over an explicit candidate list (any
// order; candidates from other namespaces are skipped): start PERMISSIVE;
// apply the mesh, namespace and workload levels in that order, where
// UNSET inherits; within a level the oldest creationTimestamp wins (ties:
// namespace then name); a selector policy in the root namespace is
// ignored; the winning workload policy's portLevelMtls overrides per
// port, UNSET there meaning the workload's mode.
func ComposePeer(root, namespace string, labels mesh.Labels, cands []*mesh.Config) PeerPolicy {
	var p PeerPolicy
	winners := map[Level]*mesh.Config{}
	var losers []loser
	for _, c := range cands {
		lvl, ok := levelOf(c, root, namespace, labels, &p)
		if !ok {
			continue
		}
		w := winners[lvl]
		switch {
		case w == nil:
			winners[lvl] = c
		case mesh.Older(c, w):
			losers = append(losers, loser{w, lvl})
			winners[lvl] = c
		default:
			losers = append(losers, loser{c, lvl})
		}
	}
	p.Mesh, p.Namespace, p.Workload = winners[LevelMesh], winners[LevelNamespace], winners[LevelWorkload]
	for _, l := range losers {
		p.Ignored = append(p.Ignored, shadowed(l, winners[l.level]))
	}
	p.resolve()
	sortFindings(p.Ignored)
	return p
}

type loser struct {
	c     *mesh.Config
	level Level
}

// levelOf classifies a candidate for this workload; ok is false when it
// does not apply. A root-namespace selector policy that would have
// selected the workload is recorded as ignored.
func levelOf(c *mesh.Config, root, namespace string, labels mesh.Labels, p *PeerPolicy) (Level, bool) {
	if c.Namespace != root && c.Namespace != namespace {
		return "", false
	}
	sel, has := peerSelector(c)
	switch {
	case !has && c.Namespace == root:
		return LevelMesh, true
	case !has:
		return LevelNamespace, true
	case !sel.Matches(labels):
		return "", false
	case c.Namespace == root:
		p.Ignored = append(p.Ignored, rootSelectorFinding(c))
		return "", false
	}
	return LevelWorkload, true
}

// peerSelector returns the policy's selector; a selector with no labels
// counts as none, as in Istio.
func peerSelector(c *mesh.Config) (mesh.Selector, bool) {
	sel, ok := mesh.SelectorOf(c.Spec)
	if !ok || sel.IsEmpty() {
		return nil, false
	}
	return sel, true
}

func (p *PeerPolicy) resolve() {
	p.Mode = ModePermissive
	for _, c := range []*mesh.Config{p.Mesh, p.Namespace, p.Workload} {
		if c == nil {
			continue
		}
		if m := modeOf(peerSpec(c).GetMtls()); m != ModeUnset {
			p.Mode = m
		}
	}
	if p.Workload == nil {
		return
	}
	for port, mtls := range peerSpec(p.Workload).GetPortLevelMtls() {
		if p.PerPort == nil {
			p.PerPort = map[uint32]Mode{}
		}
		m := modeOf(mtls)
		if m == ModeUnset {
			m = p.Mode
		}
		p.PerPort[port] = m
	}
}

func peerSpec(c *mesh.Config) *security.PeerAuthentication {
	s, _ := c.Spec.(*security.PeerAuthentication)
	return s
}

func shadowed(l loser, winner *mesh.Config) Finding {
	return Finding{Object: l.c.Key(), Severity: SeverityWarning, Reason: ReasonShadowed,
		Message: fmt.Sprintf("ignored at the %s level: %s is older (created %s) and wins; Istio drops the younger policy silently",
			l.level, winner.Key(), winner.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"))}
}

func rootSelectorFinding(c *mesh.Config) Finding {
	return Finding{Object: c.Key(), Severity: SeverityWarning, Reason: ReasonRootSelector,
		Message: fmt.Sprintf("ignored: a PeerAuthentication with a selector in the root namespace %q applies to no workload; move it to the workload's namespace or drop the selector", c.Namespace)}
}

// PeerFindings reports, for status, /debug and the audit, every
// PeerAuthentication that is ignored in whole or in part: duplicates at
// the mesh and namespace levels, workload policies shadowed for some
// workload of the snapshot, selector policies in the root namespace, and
// portLevelMtls on policies without a selector.
func PeerFindings(snap *mesh.Snapshot) []Finding {
	root := snap.Mesh().RootNamespace
	var out []Finding
	byNS := map[string][]*mesh.Config{}
	for _, c := range snap.All(mesh.KindPeerAuthentication) {
		byNS[c.Namespace] = append(byNS[c.Namespace], c)
		_, has := peerSelector(c)
		if has && c.Namespace == root {
			out = append(out, rootSelectorFinding(c))
		}
		if !has && len(peerSpec(c).GetPortLevelMtls()) > 0 {
			out = append(out, Finding{Object: c.Key(), Severity: SeverityWarning, Reason: ReasonPortLevelWithoutSelector,
				Message: "portLevelMtls is ignored: it only applies to a policy with a workload selector"})
		}
	}
	for ns, list := range byNS {
		// Namespace-wide duplicates show with any labels; an empty label
		// set matches no selector policy, so only levels mesh/namespace.
		out = append(out, ComposePeer(root, ns, nil, list).Ignored...)
		for _, w := range snap.WorkloadsInNamespace(ns) {
			if ns == root {
				continue
			}
			for _, f := range ComposePeer(root, ns, w.Labels, list).Ignored {
				if f.Reason == ReasonShadowed && isWorkloadLevel(f, list) {
					out = append(out, f)
				}
			}
		}
	}
	return dedupFindings(out)
}

func isWorkloadLevel(f Finding, list []*mesh.Config) bool {
	for _, c := range list {
		if c.Key() == f.Object {
			_, has := peerSelector(c)
			return has
		}
	}
	return false
}
