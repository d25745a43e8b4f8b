package authz

import (
	"fmt"

	"github.com/wardmesh/ward/mesh"
)

// Severity ranks a finding.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one problem with an AuthorizationPolicy, for `ward analyze`,
// status and the audit.
type Finding struct {
	Key      mesh.Key
	Severity Severity
	Message  string
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s: %s", f.Severity, f.Key, f.Message) }

// Analyze reports what is wrong or surprising in the snapshot's
// AuthorizationPolicies: invalid policies (they deny everything where they
// apply), CUSTOM providers missing from the mesh config, and HTTP-only
// fields that change meaning on TCP ports of the workloads a policy
// selects (an ALLOW rule is dropped, possibly denying all TCP traffic; a
// DENY rule ignores them and matches more broadly) — Istio applies these
// silently; Ward says so.
func Analyze(snap *mesh.Snapshot) []Finding {
	var out []Finding
	for _, c := range snap.All(mesh.KindAuthorizationPolicy) {
		p, err := FromConfig(c)
		if err != nil {
			out = append(out, Finding{c.Key(), SeverityError, err.Error() + " (workloads it applies to deny every request)"})
			continue
		}
		if p.Action == ActionCustom {
			if _, ok := findProvider(snap.Mesh(), p.Provider); !ok {
				out = append(out, Finding{c.Key(), SeverityError, fmt.Sprintf("extension provider %q is not defined in the mesh config: matching requests are denied", p.Provider)})
			}
		}
		if len(p.Warnings) > 0 && selectsTCP(snap, c) {
			for _, w := range p.Warnings {
				out = append(out, Finding{c.Key(), SeverityWarning, w})
			}
		}
	}
	return out
}

// selectsTCP reports whether the policy applies to a workload that serves
// a non-HTTP port (or whose ports are unknown, which Ward proxies as TCP).
func selectsTCP(snap *mesh.Snapshot, c *mesh.Config) bool {
	for _, w := range snap.Workloads() {
		if !appliesTo(snap, c, w) {
			continue
		}
		svcs := snap.ServicesForWorkload(w.Namespace, w.Labels)
		if len(svcs) == 0 {
			return true
		}
		for _, s := range svcs {
			for _, p := range s.Ports {
				if !p.Protocol.IsHTTP() {
					return true
				}
			}
		}
	}
	return false
}

func appliesTo(snap *mesh.Snapshot, c *mesh.Config, w *mesh.Workload) bool {
	for _, pc := range PoliciesFor(snap, w.Namespace, w.Labels) {
		if pc == c {
			return true
		}
	}
	return false
}
