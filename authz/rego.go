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
	for i, r := range p.Rules {
		writeRule(&b, p, i, r)
	}
	return Module{Name: p.Namespace + "/" + p.Name + ".rego", Package: "data." + pkg, Source: b.String()}
}

// writeRule emits rule i. A rule without HTTP-only conditions is one body.
// With them, the HTTP body keeps every condition; on TCP an ALLOW rule has
// no body (dropped) and any other action gets a broader body without the
// HTTP-only conditions (Istio's TCP semantics).
func writeRule(b *strings.Builder, p *Policy, i int, r Rule) {
	fmt.Fprintf(b, "\n# %s\n", p.RuleName(i))
	if !r.HasHTTP() {
		writeBody(b, i, "", "", r)
		return
	}
	writeBody(b, i, "_http", "input.http", r)
	if tcp, ok := r.ForTCP(p.Action); ok {
		writeBody(b, i, "_tcp", "not input.http", tcp)
	}
}

// writeBody emits `matches contains i` for one variant of a rule. A from
// or to list with several entries (an OR) becomes a helper rule with one
// definition per entry.
func writeBody(b *strings.Builder, i int, variant, guard string, r Rule) {
	var lines []string
	if guard != "" {
		lines = append(lines, guard)
	}
	lines = append(lines, groupExpr(b, fmt.Sprintf("rule%d%s_from", i, variant), r.From)...)
	lines = append(lines, groupExpr(b, fmt.Sprintf("rule%d%s_to", i, variant), r.To)...)
	for _, m := range r.When {
		lines = append(lines, matchExpr(m))
	}
	if len(lines) == 0 {
		lines = []string{"true"}
	}
	fmt.Fprintf(b, "matches contains %d if {\n\t%s\n}\n", i, strings.Join(lines, "\n\t"))
}

// groupExpr renders an OR of conjunctions: one group is inlined, several
// become the helper rule `name` defined once per group.
func groupExpr(b *strings.Builder, name string, groups [][]Match) []string {
	if len(groups) == 0 {
		return nil
	}
	if len(groups) == 1 {
		return conj(groups[0])
	}
	for _, g := range groups {
		c := conj(g)
		if len(c) == 0 {
			return nil // an empty group (all its conditions ignored on TCP) matches everything
		}
	}
	for _, g := range groups {
		fmt.Fprintf(b, "%s if {\n\t%s\n}\n", name, strings.Join(conj(g), "\n\t"))
	}
	return []string{name}
}

func conj(ms []Match) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, matchExpr(m))
	}
	return out
}

// attrRef reads each attribute with object.get(..., null): an absent
// attribute must reach the matcher as null (which matches nothing), not
// as undefined, which OPA may hoist out of a negation and so make the
// whole body fail.
var attrRef = map[Attr]string{
	AttrPrincipal:        "object.get(input, [\"source\", \"principal\"], null)",
	AttrNamespace:        "object.get(input, [\"source\", \"namespace\"], null)",
	AttrServiceAccount:   "object.get(input, [\"source\", \"service_account\"], null)",
	AttrSourceIP:         "object.get(input, [\"source\", \"ip\"], null)",
	AttrRemoteIP:         "object.get(input, [\"remote\", \"ip\"], null)",
	AttrRequestPrincipal: "object.get(input, [\"auth\", \"principal\"], null)",
	AttrAudience:         "object.get(input, [\"auth\", \"audiences\"], null)",
	AttrPresenter:        "object.get(input, [\"auth\", \"presenter\"], null)",
	AttrHost:             "object.get(input, [\"request\", \"host\"], null)",
	AttrMethod:           "object.get(input, [\"request\", \"method\"], null)",
	AttrPath:             "object.get(input, [\"request\", \"path\"], null)",
	AttrDestIP:           "object.get(input, [\"destination\", \"ip\"], null)",
	AttrDestPort:         "object.get(input, [\"destination\", \"port\"], null)",
	AttrSNI:              "object.get(input, [\"sni\"], null)",
}

func ref(m Match) string {
	switch m.Attr {
	case AttrHeader:
		return "object.get(input, [\"request\", \"headers\", " + q(m.Key[0]) + "], null)"
	case AttrClaim:
		keys := make([]string, len(m.Key))
		for i, k := range m.Key {
			keys[i] = q(k)
		}
		return "object.get(input, [\"auth\", \"claims\", " + strings.Join(keys, ", ") + "], null)"
	}
	return attrRef[m.Attr]
}

// matchExpr renders one condition. Exact-only values compile to == or a
// set lookup (cheapest in OPA); patterns go through the library.
func matchExpr(m Match) string {
	e := positive(m)
	if m.Not {
		return "not " + e
	}
	return e
}

func positive(m Match) string {
	r := ref(m)
	switch m.Attr {
	case AttrSourceIP, AttrRemoteIP, AttrDestIP:
		return "lib.ip_match(" + r + ", " + quoteList(m.Values) + ")"
	case AttrDestPort:
		return r + " in " + quoteSet(m.Values)
	case AttrClaim, AttrAudience:
		return "lib.claim_match(" + r + ", " + matcher(m.Values, false, false) + ")"
	case AttrPath:
		if hasTemplate(m.Values) {
			return "lib.path_match(" + r + ", " + matcher(m.Values, true, false) + ")"
		}
	}
	if exactOnly(m.Values) {
		if len(m.Values) == 1 {
			return r + " == " + q(m.Values[0])
		}
		return r + " in " + quoteSet(m.Values)
	}
	return "lib.str_match(" + r + ", " + matcher(m.Values, false, m.Attr == AttrHeader) + ")"
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
		switch {
		case v == "*":
			anyv = true
		case templates && schema.IsPathTemplate(v):
			rx = append(rx, TemplateRegex(v))
		case strings.HasSuffix(v, "*"):
			prefix = append(prefix, strings.TrimSuffix(v, "*"))
		case strings.HasPrefix(v, "*"):
			suffix = append(suffix, strings.TrimPrefix(v, "*"))
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
