package authz

import (
	"fmt"

	"github.com/wardmesh/ward/mesh"
)

// Action is an AuthorizationPolicy action.
type Action string

// The four actions, in the order they are considered.
const (
	ActionCustom Action = "CUSTOM"
	ActionDeny   Action = "DENY"
	ActionAllow  Action = "ALLOW"
	ActionAudit  Action = "AUDIT"
)

// Attr is a request attribute a policy condition tests.
type Attr string

// Attributes, named after Istio's `when` keys.
const (
	AttrPrincipal        Attr = "source.principal"
	AttrNamespace        Attr = "source.namespace"
	AttrServiceAccount   Attr = "source.serviceAccount"
	AttrTrustDomain      Attr = "source.trustDomain"
	AttrSourceIP         Attr = "source.ip"
	AttrRemoteIP         Attr = "remote.ip"
	AttrRequestPrincipal Attr = "request.auth.principal"
	AttrAudience         Attr = "request.auth.audiences"
	AttrPresenter        Attr = "request.auth.presenter"
	AttrClaim            Attr = "request.auth.claims"
	AttrHeader           Attr = "request.headers"
	AttrHost             Attr = "request.host"
	AttrMethod           Attr = "request.method"
	AttrPath             Attr = "request.path"
	AttrDestIP           Attr = "destination.ip"
	AttrDestPort         Attr = "destination.port"
	AttrSNI              Attr = "connection.sni"
)

// HTTPOnly reports whether the attribute exists only on HTTP requests.
func (a Attr) HTTPOnly() bool {
	switch a {
	case AttrRequestPrincipal, AttrAudience, AttrPresenter, AttrClaim, AttrHeader, AttrHost, AttrMethod, AttrPath:
		return true
	}
	return false
}

// Match is one condition: the attribute (with Key for headers and the
// claim path for claims) matches one of Values, or with Not, none of them.
type Match struct {
	Attr   Attr
	Key    []string // header name (lower case) or claim path; nil otherwise
	Values []string
	Not    bool
	// Field is the source field path, e.g. "from[0].source.notPrincipals".
	Field string
}

// Rule is one AuthorizationPolicy rule: any From ∧ any To ∧ every When.
// Each From and To entry is a conjunction of matches; a nil list matches
// everything.
type Rule struct {
	From [][]Match
	To   [][]Match
	When []Match
}

// HasHTTP reports whether any condition of the rule needs HTTP.
func (r Rule) HasHTTP() bool {
	for _, m := range r.all() {
		if m.Attr.HTTPOnly() {
			return true
		}
	}
	return false
}

func (r Rule) all() []Match {
	var out []Match
	for _, g := range r.From {
		out = append(out, g...)
	}
	for _, g := range r.To {
		out = append(out, g...)
	}
	return append(out, r.When...)
}

// ForTCP returns the rule as it applies to a TCP connection, Istio's way:
// an ALLOW rule with any HTTP-only condition is dropped (ok=false: it can
// never match TCP), while for every other action the HTTP-only conditions
// are removed, which makes the rule broader.
func (r Rule) ForTCP(a Action) (Rule, bool) {
	if !r.HasHTTP() {
		return r, true
	}
	if a == ActionAllow {
		return Rule{}, false
	}
	return Rule{From: dropHTTP(r.From), To: dropHTTP(r.To), When: keepTCP(r.When)}, true
}

func dropHTTP(groups [][]Match) [][]Match {
	if groups == nil {
		return nil
	}
	out := make([][]Match, 0, len(groups))
	for _, g := range groups {
		out = append(out, keepTCP(g))
	}
	return out
}

func keepTCP(ms []Match) []Match {
	var out []Match
	for _, m := range ms {
		if !m.Attr.HTTPOnly() {
			out = append(out, m)
		}
	}
	return out
}

// Policy is one validated AuthorizationPolicy in Ward's model.
type Policy struct {
	Namespace string
	Name      string
	Action    Action
	DryRun    bool
	Provider  string // CUSTOM only
	Rules     []Rule
	// Warnings are legal but surprising constructs (HTTP-only fields that
	// change meaning on TCP ports); analyze and status report them.
	Warnings []string
}

// ID names the policy as ns[<ns>]-policy[<name>].
func (p *Policy) ID() string { return PolicyID(p.Namespace, p.Name) }

// RuleName names rule i as ns[<ns>]-policy[<name>]-rule[<i>].
func (p *Policy) RuleName(i int) string { return RuleName(p.Namespace, p.Name, i) }

// PolicyID renders ns[<ns>]-policy[<name>].
func PolicyID(ns, name string) string { return "ns[" + ns + "]-policy[" + name + "]" }

// RuleName renders ns[<ns>]-policy[<name>]-rule[<i>].
func RuleName(ns, name string, i int) string {
	return fmt.Sprintf("%s-rule[%d]", PolicyID(ns, name), i)
}

// Key returns the mesh key of the policy.
func (p *Policy) Key() mesh.Key {
	return mesh.Key{Kind: mesh.KindAuthorizationPolicy, Namespace: p.Namespace, Name: p.Name}
}
