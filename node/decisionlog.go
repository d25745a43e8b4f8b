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
		e.SetDecision(v.Decision)
	}
	return e
}

func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}
