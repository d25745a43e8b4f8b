package node

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/wardmesh/ward/authz/decisionlog"
)

// Entry renders the decision as a line of Ward's decision log, the format
// the ext_authz server writes, so one reader (ward audit, an operator's
// jq) serves sidecar, proxyless and ambient decisions alike.
func (d Decision) Entry() *decisionlog.Entry {
	v := d.Verdict
	e := &decisionlog.Entry{
		DecisionID: d.ID, Time: d.Time, Workload: d.Workload.Namespace + "/" + d.Workload.Name,
		SourcePrincipal: d.Conn.Principal, Allowed: v.Allowed, Reason: string(v.Reason),
		Explanation: v.Explain(), Policy: v.PeerPolicy,
	}
	if v.Decision != nil && v.Reason != ReasonNoLocalProvider {
		a := v.Decision
		e.Action, e.Policy, e.Rule = string(a.Action), a.Policy, a.Rule
		e.DryRun, e.Audit = len(a.DryRun) > 0, a.Audited()
		for _, h := range a.DryRun {
			e.DryRunRules = append(e.DryRunRules, h.Rule)
		}
		for _, h := range a.Audit {
			e.AuditRules = append(e.AuditRules, h.Rule)
		}
		if a.Shadow != nil {
			allowed := a.Shadow.Allowed
			e.ShadowAllowed = &allowed
		}
	}
	return e
}

func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}
