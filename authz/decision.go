package authz

import (
	"errors"
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

// parseDecision reads the library's decide() result.
func parseDecision(v any) (*Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decision is %T, want object", v)
	}
	verdict, err := parseVerdict(m["verdict"])
	if err != nil {
		return nil, err
	}
	shadow, err := parseVerdict(m["shadow"])
	if err != nil {
		return nil, err
	}
	d := &Decision{Verdict: *verdict}
	if d.Custom, err = parseHits(m["custom"]); err != nil {
		return nil, err
	}
	if d.Audit, err = parseHits(m["audit"]); err != nil {
		return nil, err
	}
	if d.DryRun, err = parseHits(m["dry_run"]); err != nil {
		return nil, err
	}
	if len(d.DryRun) > 0 || *shadow != *verdict {
		d.Shadow = shadow
	}
	return d, nil
}

func parseVerdict(v any) (*Verdict, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("verdict missing")
	}
	out := &Verdict{}
	out.Allowed, ok = m["allowed"].(bool)
	if !ok {
		return nil, errors.New("verdict.allowed missing")
	}
	r, _ := m["reason"].(string)
	out.Reason = Reason(r)
	if by, ok := m["by"].(map[string]any); ok {
		h := hitOf(by)
		out.Policy, out.Rule, out.Action = h.Policy, h.Rule, h.Action
	}
	if n, ok := m["candidates"].(interface{ Int64() (int64, error) }); ok {
		c, _ := n.Int64()
		out.Candidates = int(c)
	}
	return out, nil
}

func parseHits(v any) ([]Hit, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("hit list is %T", v)
	}
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]Hit, 0, len(list))
	for _, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("hit is %T", x)
		}
		out = append(out, hitOf(m))
	}
	return out, nil
}

func hitOf(m map[string]any) Hit {
	h := Hit{}
	h.Policy, _ = m["policy"].(string)
	h.Rule, _ = m["rule"].(string)
	a, _ := m["action"].(string)
	h.Action = Action(a)
	h.DryRun, _ = m["dry_run"].(bool)
	h.Provider, _ = m["provider"].(string)
	return h
}
