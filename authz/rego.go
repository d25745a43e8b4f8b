package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/wardmesh/ward/mesh/schema"
	"regexp"
	"sort"
	"strings"
)

// Module is one compiled Rego module.
type Module struct {
	Name    string // file name, "<ns>/<name>.rego"
	Package string // e.g. data.ward.policy.p_0123456789abcdef
	Source  string
}

// RegoPackage returns the Rego package path of a policy's module.
func RegoPackage(ns, name string) string {
	sum := sha256.Sum256([]byte(ns + "/" + name))
	return "ward.policy.p_" + hex.EncodeToString(sum[:8])
}

// CompileRego renders p as one Rego module. The module defines `meta`
// (id, action, dry_run, provider, rule names) and the partial set
// `matches` of the indexes of the rules that match `input`; each rule is
// preceded by its name, ns[<ns>]-policy[<name>]-rule[<i>].
func CompileRego(p *Policy) Module {
	pkg := RegoPackage(p.Namespace, p.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (%s)\npackage %s\n\nimport rego.v1\n\nimport data.ward.lib\n\n", p.ID(), p.Action, pkg)
	names := make([]string, len(p.Rules))
	for i := range p.Rules {
		names[i] = q(p.RuleName(i))
	}
	fmt.Fprintf(&b, "meta := {\n\t\"id\": %q,\n\t\"action\": %q,\n\t\"dry_run\": %t,\n\t\"provider\": %q,\n\t\"rules\": [%s],\n}\n",
		p.ID(), string(p.Action), p.DryRun, p.Provider, strings.Join(names, ", "))
	if len(p.Rules) == 0 {
		b.WriteString("\n# no rules: the policy matches nothing\nmatches := set()\n")
	}
	w := &regoWriter{b: &b}
	for i, r := range p.Rules {
		w.writeRule(p, i, r)
	}
	return Module{Name: p.Namespace + "/" + p.Name + ".rego", Package: "data." + pkg, Source: b.String()}
}

// writeRule emits rule i. A rule without HTTP-only conditions is one body.
// With them, the HTTP body keeps every condition; on TCP an ALLOW rule has
// no body (dropped) and any other action gets a broader body without the
// HTTP-only conditions (Istio's TCP semantics).
// regoWriter emits one module; helper rules (ORs of conditions) get
// numbered names.
type regoWriter struct {
	b       *strings.Builder
	helpers int
}

func (w *regoWriter) writeRule(p *Policy, i int, r Rule) {
	fmt.Fprintf(w.b, "\n# %s\n", p.RuleName(i))
	if !r.HasHTTP() {
		w.writeBody(i, "", "", r)
		return
	}
	w.writeBody(i, "_http", "input.http", r)
	if tcp, ok := r.ForTCP(p.Action); ok {
		w.writeBody(i, "_tcp", "not input.http", tcp)
	}
}

// writeBody emits `matches contains i` for one variant of a rule. A from
// or to list with several entries (an OR) becomes a helper rule with one
// definition per entry.
func (w *regoWriter) writeBody(i int, variant, guard string, r Rule) {
	var lines []string
	if guard != "" {
		lines = append(lines, guard)
	}
	lines = append(lines, w.groupExpr(fmt.Sprintf("rule%d%s_from", i, variant), r.From)...)
	lines = append(lines, w.groupExpr(fmt.Sprintf("rule%d%s_to", i, variant), r.To)...)
	for _, m := range r.When {
		lines = append(lines, w.matchExpr(m))
	}
	if len(lines) == 0 {
		lines = []string{"true"}
	}
	fmt.Fprintf(w.b, "matches contains %d if {\n\t%s\n}\n", i, strings.Join(lines, "\n\t"))
}

// groupExpr renders an OR of conjunctions: one group is inlined, several
// become the helper rule `name` defined once per group.
func (w *regoWriter) groupExpr(name string, groups [][]Match) []string {
	if len(groups) == 0 {
		return nil
	}
	if len(groups) == 1 {
		return w.conj(groups[0])
	}
	bodies := make([][]string, 0, len(groups))
	for _, g := range groups {
		c := w.conj(g)
		if len(c) == 0 {
			return nil // an empty group (all its conditions ignored on TCP) matches everything
		}
		bodies = append(bodies, c)
	}
	for _, c := range bodies {
		fmt.Fprintf(w.b, "%s if {\n\t%s\n}\n", name, strings.Join(c, "\n\t"))
	}
	return []string{name}
}

func (w *regoWriter) conj(ms []Match) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, w.matchExpr(m))
	}
	return out
}

// helper emits a boolean rule true when any of conds holds and returns
// its name.
func (w *regoWriter) helper(conds []string) string {
	name := fmt.Sprintf("cond%d", w.helpers)
	w.helpers++
	for _, c := range conds {
		fmt.Fprintf(w.b, "%s if { %s }\n", name, c)
	}
	return name
}

// attrRef is the input document path of each attribute. The input is
// complete (absent values are null), so plain references are safe inside
// negations; only header and claim lookups, whose keys vary, use
// object.get.
var attrRef = map[Attr]string{
	AttrPrincipal:        "input.source.principal",
	AttrNamespace:        "input.source.namespace",
	AttrServiceAccount:   "input.source.service_account",
	AttrTrustDomain:      "input.source.trust_domain",
	AttrSourceIP:         "input.source.ip",
	AttrRemoteIP:         "input.remote.ip",
	AttrRequestPrincipal: "input.auth.principal",
	AttrAudience:         "input.auth.audiences",
	AttrPresenter:        "input.auth.presenter",
	AttrHost:             "input.request.host",
	AttrMethod:           "input.request.method",
	AttrPath:             "input.request.path",
	AttrDestIP:           "input.destination.ip",
	AttrDestPort:         "input.destination.port",
	AttrSNI:              "input.sni",
}

func ref(m Match) string {
	switch m.Attr {
	case AttrHeader:
		return "object.get(input.request.headers, " + q(m.Key[0]) + ", null)"
	case AttrClaim:
		keys := make([]string, len(m.Key))
		for i, k := range m.Key {
			keys[i] = q(k)
		}
		return "object.get(input.auth.claims, [" + strings.Join(keys, ", ") + "], null)"
	}
	return attrRef[m.Attr]
}

// matchExpr renders one condition, negated for not-fields.
func (w *regoWriter) matchExpr(m Match) string {
	e := w.positive(m)
	if m.Not {
		return "not " + e
	}
	return e
}

// positive renders "the attribute matches one of the values". Patterns
// are pre-classified here and compiled to plain comparisons and builtins
// (==, in, startswith, endswith, net.cidr_contains, regex.match): a
// function call per value costs more in OPA than the comparison itself.
// Several values become a helper rule, one definition per value. Only
// claims and audiences, which may be lists, go through the library.
func (w *regoWriter) positive(m Match) string {
	r := ref(m)
	switch m.Attr {
	case AttrDestPort:
		return r + " in " + quoteSet(m.Values)
	case AttrClaim, AttrAudience:
		return "lib.claim_match(" + r + ", " + matcher(m.Values, false, false) + ")"
	}
	if exactOnly(m.Values) && !isIP(m.Attr) {
		if len(m.Values) == 1 {
			return r + " == " + q(m.Values[0])
		}
		return r + " in " + quoteSet(m.Values)
	}
	conds := make([]string, 0, len(m.Values))
	for _, v := range m.Values {
		conds = append(conds, valueCond(m, r, v))
	}
	if len(conds) == 1 && !strings.Contains(conds[0], ";") {
		return conds[0]
	}
	return w.helper(conds)
}

func isIP(a Attr) bool { return a == AttrSourceIP || a == AttrRemoteIP || a == AttrDestIP }

// valueCond is the condition for one value. Istio's "*" is a non-empty
// value, except for headers where it means present; other patterns are
// classified as Istio does (classify), namespaces as globs (isGlob).
func valueCond(m Match, r, v string) string {
	switch {
	case isIP(m.Attr):
		return "net.cidr_contains(" + q(v) + ", " + r + ")"
	case v == "*" && m.Attr == AttrHeader:
		return r + " != null"
	case m.Attr == AttrPath && schema.IsPathTemplate(v):
		return "regex.match(" + q(TemplateRegex(v)) + ", " + r + ")"
	case m.Attr == AttrNamespace && isGlob(v):
		return "regex.match(" + q("^"+globRegex(v, ".*")+"$") + ", " + r + ")"
	}
	switch kind, lit := classify(v); kind {
	case patAny:
		return "is_string(" + r + "); " + r + " != \"\""
	case patPrefix:
		return "startswith(" + r + ", " + q(lit) + ")"
	case patSuffix:
		return "endswith(" + r + ", " + q(lit) + ")"
	}
	return r + " == " + q(v)
}

func exactOnly(vals []string) bool {
	for _, v := range vals {
		if strings.Contains(v, "*") {
			return false
		}
	}
	return true
}

func hasTemplate(vals []string) bool {
	for _, v := range vals {
		if schema.IsPathTemplate(v) {
			return true
		}
	}
	return false
}

// matcher pre-classifies patterns into the library's matcher object; "*"
// becomes "present" for headers and "any" (non-empty) otherwise.
func matcher(vals []string, templates, header bool) string {
	var exact, prefix, suffix, rx []string
	anyv := false
	for _, v := range vals {
		if templates && schema.IsPathTemplate(v) {
			rx = append(rx, TemplateRegex(v))
			continue
		}
		switch kind, lit := classify(v); kind {
		case patAny:
			anyv = true
		case patPrefix:
			prefix = append(prefix, lit)
		case patSuffix:
			suffix = append(suffix, lit)
		default:
			exact = append(exact, v)
		}
	}
	return fmt.Sprintf(`{"any": %t, "present": %t, "exact": %s, "prefix": %s, "suffix": %s, "regex": %s}`,
		anyv && !header, anyv && header, quoteSet(exact), quoteList(prefix), quoteList(suffix), quoteList(rx))
}

// TemplateRegex converts an Envoy URI template to an anchored regex: {*}
// is one non-empty segment, {**} zero or more characters including '/'
// (zero or more segments).
func TemplateRegex(t string) string {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(t); {
		switch {
		case strings.HasPrefix(t[i:], "{**}"):
			b.WriteString(".*")
			i += 4
		case strings.HasPrefix(t[i:], "{*}"):
			b.WriteString("[^/]+")
			i += 3
		default:
			j := nextOperator(t[i:])
			b.WriteString(regexp.QuoteMeta(t[i : i+j]))
			i += j
		}
	}
	b.WriteString("$")
	return b.String()
}

// q quotes a string as a JSON string, which is also a valid Rego string.
func q(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return strings.TrimSuffix(b.String(), "\n")
}

func quoteList(vals []string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = q(v)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func quoteSet(vals []string) string {
	if len(vals) == 0 {
		return "set()"
	}
	s := append([]string(nil), vals...)
	sort.Strings(s)
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = q(v)
	}
	return "{" + strings.Join(out, ", ") + "}"
}

// nextOperator returns the length of the literal before the next {*} or
// {**} in t (all of t when there is none).
func nextOperator(t string) int {
	a, b := strings.Index(t, "{*}"), strings.Index(t, "{**}")
	switch {
	case a < 0 && b < 0:
		return len(t)
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}
