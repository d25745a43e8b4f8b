package authz

import (
	"fmt"
)

// Reason says why a decision came out the way it did.
type Reason string

// Reasons.
const (
	ReasonDeny          Reason = "deny"            // a DENY rule matched
	ReasonAllow         Reason = "allow"           // an ALLOW rule matched
	ReasonNoAllowPolicy Reason = "no_allow_policy" // no ALLOW policy applies: allowed
	ReasonNoAllowMatch  Reason = "no_allow_match"  // ALLOW policies apply, none matched
	ReasonCustomDeny    Reason = "custom_deny"     // a CUSTOM provider denied
	ReasonInvalidPolicy Reason = "invalid_policy"  // an applicable policy is invalid: fail closed
	ReasonError         Reason = "error"           // evaluation failed: fail closed
	ReasonBadRequest    Reason = "bad_request"     // the check request was unusable: fail closed
)

// Verdict is an allow/deny outcome with the rule that produced it.
type Verdict struct {
	Allowed    bool   `json:"allowed"`
	Reason     Reason `json:"reason"`
	Policy     string `json:"policy,omitempty"`
	Rule       string `json:"rule,omitempty"`
	Action     Action `json:"action,omitempty"`
	Candidates int    `json:"candidates,omitempty"`
}

// Decision is the explained outcome of one authorization check.
type Decision struct {
	Verdict
	// Detail adds context for error and custom denials.
	Detail string `json:"detail,omitempty"`
	// Custom lists the CUSTOM rules that matched (enforced ones only).
	Custom []Hit `json:"custom,omitempty"`
	// Delegated names CUSTOM providers enforced by their own Envoy filter.
	Delegated []string `json:"delegated,omitempty"`
	// Provider is the result of an in-process rego provider, if consulted.
	Provider *ProviderResult `json:"provider,omitempty"`
	// Audit lists matching AUDIT rules: the request goes to the audit log.
	Audit []Hit `json:"audit,omitempty"`
	// DryRun lists matching dry-run DENY/ALLOW rules; Shadow is the
	// verdict had they been enforced.
	DryRun []Hit    `json:"dry_run,omitempty"`
	Shadow *Verdict `json:"shadow,omitempty"`
}

// Audited reports whether an AUDIT policy matched.
func (d *Decision) Audited() bool { return len(d.Audit) > 0 }

func (d *Decision) deny(r Reason, h Hit) {
	d.Verdict = Verdict{Allowed: false, Reason: r, Policy: h.Policy, Rule: h.Rule, Action: h.Action}
}

// Explain renders the decision in one line: the deciding policy and rule,
// or "no ALLOW policy matched (N candidates)".
func (d *Decision) Explain() string {
	s := d.Verdict.explain()
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	if d.Shadow != nil && d.Shadow.Allowed != d.Allowed {
		s += fmt.Sprintf(" [dry-run would %s: %s]", verb(d.Shadow.Allowed), d.Shadow.explain())
	}
	return s
}

func verb(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

func (v *Verdict) explain() string {
	switch v.Reason {
	case ReasonDeny:
		return "denied by " + v.Rule
	case ReasonAllow:
		return "allowed by " + v.Rule
	case ReasonCustomDeny:
		return "denied by CUSTOM " + v.Rule
	case ReasonNoAllowPolicy:
		return "allowed: no ALLOW policy applies"
	case ReasonNoAllowMatch:
		return fmt.Sprintf("denied: no ALLOW policy matched (%d candidates)", v.Candidates)
	case ReasonInvalidPolicy:
		return "denied: an applicable policy is invalid"
	case ReasonBadRequest:
		return "denied: malformed check request"
	}
	return "denied: evaluation error"
}

func failClosed(r Reason, err error) *Decision {
	return &Decision{Verdict: Verdict{Allowed: false, Reason: r}, Detail: err.Error()}
}

// FailClosed returns a denying decision for reason r caused by err.
func FailClosed(r Reason, err error) *Decision { return failClosed(r, err) }

// decide applies Istio's order to the first matching rule of each policy
// (first[i] < 0: no match): CUSTOM hits are returned for the caller to
// consult; the verdict is DENY → (no ALLOW policy ⇒ allow) → ALLOW match
// ⇒ allow, else deny; AUDIT hits are recorded; dry-run policies only feed
// the shadow verdict. This is policies/lib/decision.rego's decide().
func decide(ps []*Policy, first []int) *Decision {
	return decideNamed(ps, newRuleNames(ps), first)
}

// ruleNames holds each policy's ID and rule names, rendered once per
// Prepared instead of on every decision.
type ruleNames struct {
	ids   []string
	rules [][]string
}

func newRuleNames(ps []*Policy) *ruleNames {
	n := &ruleNames{ids: make([]string, len(ps)), rules: make([][]string, len(ps))}
	for i, p := range ps {
		n.ids[i] = p.ID()
		n.rules[i] = make([]string, len(p.Rules))
		for r := range p.Rules {
			n.rules[i][r] = p.RuleName(r)
		}
	}
	return n
}

// rule names rule r of policy i of ps.
func (n *ruleNames) rule(ps []*Policy, i, r int) string {
	if r < len(n.rules[i]) {
		return n.rules[i][r]
	}
	return ps[i].RuleName(r)
}

// decideNamed is decide with the names rendered.
func decideNamed(ps []*Policy, names *ruleNames, first []int) *Decision {
	hit := func(i int) Hit {
		p := ps[i]
		return Hit{Policy: names.ids[i], Rule: names.rule(ps, i, first[i]), Action: p.Action, DryRun: p.DryRun, Provider: p.Provider}
	}
	d := &Decision{}
	var dryDeny, dryAllow []Hit
	for i, p := range ps {
		if first[i] < 0 {
			continue
		}
		switch {
		case p.Action == ActionCustom && !p.DryRun:
			d.Custom = append(d.Custom, hit(i))
		case p.Action == ActionAudit:
			d.Audit = append(d.Audit, hit(i))
		case p.DryRun && p.Action == ActionDeny:
			dryDeny = append(dryDeny, hit(i))
		case p.DryRun && p.Action == ActionAllow:
			dryAllow = append(dryAllow, hit(i))
		}
	}
	d.DryRun = append(dryDeny, dryAllow...)
	d.Verdict = verdictOf(ps, names, first, false)
	shadow := verdictOf(ps, names, first, true)
	if len(d.DryRun) > 0 || shadow != d.Verdict {
		d.Shadow = &shadow
	}
	return d
}

// verdictOf decides from DENY and ALLOW policies, counting dry-run ones
// only when withDry.
func verdictOf(ps []*Policy, names *ruleNames, first []int, withDry bool) Verdict {
	allowPolicies := 0
	var allow *Verdict
	for i, p := range ps {
		if p.DryRun && !withDry {
			continue
		}
		switch p.Action {
		case ActionDeny:
			if first[i] >= 0 {
				return Verdict{Allowed: false, Reason: ReasonDeny, Policy: names.ids[i], Rule: names.rule(ps, i, first[i]), Action: ActionDeny}
			}
		case ActionAllow:
			allowPolicies++
			if first[i] >= 0 && allow == nil {
				allow = &Verdict{Allowed: true, Reason: ReasonAllow, Policy: names.ids[i], Rule: names.rule(ps, i, first[i]), Action: ActionAllow}
			}
		}
	}
	switch {
	case allowPolicies == 0:
		return Verdict{Allowed: true, Reason: ReasonNoAllowPolicy}
	case allow != nil:
		return *allow
	}
	return Verdict{Allowed: false, Reason: ReasonNoAllowMatch, Candidates: allowPolicies}
}
