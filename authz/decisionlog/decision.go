package decisionlog

import "github.com/wardmesh/ward/authz"

// SetDecision records what the engine decided: the action, the deciding
// policy and rule, dry-run and audit matches and the shadow verdict. The
// ext_authz server and the node proxy both log their verdicts this way.
func (e *Entry) SetDecision(d *authz.Decision) {
	e.Action, e.Policy, e.Rule = string(d.Action), d.Policy, d.Rule
	e.DryRun, e.Audit = len(d.DryRun) > 0, d.Audited()
	for _, h := range d.DryRun {
		e.DryRunRules = append(e.DryRunRules, h.Rule)
	}
	for _, h := range d.Audit {
		e.AuditRules = append(e.AuditRules, h.Rule)
	}
	if d.Shadow != nil {
		allowed := d.Shadow.Allowed
		e.ShadowAllowed = &allowed
	}
}
