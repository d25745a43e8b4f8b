package recommend

import (
	"sort"
	"strconv"
	"strings"
)

// Recommend proposes policies that allow every allowed call in calls and,
// apart from collapsed paths, nothing else. The result does not depend on
// the order of calls.
func Recommend(calls []Call, cfg Config) Result {
	if cfg.CollapseAt <= 0 {
		cfg.CollapseAt = 3
	}
	var res Result
	groups := map[string]*group{}
	byDest := map[string]*group{} // nil: not a workload identity
	for _, c := range calls {
		res.Window.add(c.Time)
		if c.Denied {
			res.Denied++
			continue
		}
		g, ok := byDest[c.Destination]
		if !ok {
			ns, sa, valid := principalParts(c.Destination)
			if valid {
				g = groupFor(groups, ns, sa, cfg.Selector)
				g.workloads[c.Destination] = true
			}
			byDest[c.Destination] = g
		}
		if g == nil {
			res.Skipped++
			continue
		}
		g.evidence.add(c.Time)
		g.source(c).add(c)
	}
	keys := sortedKeys(groups)
	for _, k := range keys {
		res.Policies = append(res.Policies, groups[k].policy(cfg.CollapseAt))
	}
	nameUniquely(res.Policies)
	return res
}

// group gathers the calls to the workloads one policy selects.
type group struct {
	namespace string
	sa        string // first service account seen, for the name
	selector  map[string]string
	workloads map[string]bool
	sources   map[source]*calls
	evidence  Evidence
}

func groupFor(groups map[string]*group, ns, sa string, sel func(string, string) map[string]string) *group {
	var labels map[string]string
	if sel != nil {
		labels = sel(ns, sa)
	}
	k := ns + "\x00" + labelString(labels)
	g := groups[k]
	if g == nil {
		g = &group{namespace: ns, selector: labels, workloads: map[string]bool{}, sources: map[source]*calls{}}
		groups[k] = g
	}
	if g.sa == "" || sa < g.sa {
		g.sa = sa
	}
	return g
}

// source is who called: a principal, a plaintext address, or anyone.
type source struct {
	kind  int // 0 principal, 1 address, 2 anyone
	value string
}

func (g *group) source(c Call) *calls {
	s := source{kind: 0, value: c.Source}
	switch {
	case c.Source != "":
	case c.SourceAddress != "":
		s = source{kind: 1, value: c.SourceAddress}
	default:
		s = source{kind: 2}
	}
	cs := g.sources[s]
	if cs == nil {
		cs = &calls{ops: map[op]*Evidence{}}
		g.sources[s] = cs
	}
	return cs
}

// calls is what one source did to one group.
type calls struct {
	ops map[op]*Evidence
}

// op is one observed operation; tcp ops carry only the port.
type op struct {
	port   uint32
	tcp    bool
	method string
	path   string
}

func (cs *calls) add(c Call) {
	o := op{port: c.Port, tcp: c.Protocol == "tcp"}
	if !o.tcp {
		o.method, o.path = c.Method, c.Path
	}
	e := cs.ops[o]
	if e == nil {
		e = &Evidence{}
		cs.ops[o] = e
	}
	e.add(c.Time)
}

// policy builds the group's rules: sources with the same operations
// share a rule.
func (g *group) policy(collapseAt int) Policy {
	p := Policy{Namespace: g.namespace, Selector: g.selector, Evidence: g.evidence}
	for w := range g.workloads {
		p.Workloads = append(p.Workloads, w)
	}
	sort.Strings(p.Workloads)
	p.Name = "ward-recommended"
	if len(g.selector) > 0 {
		p.Name += "-" + dnsLabel(g.sa)
	}
	byOps := map[string]*Rule{}
	for s, cs := range g.sources {
		for _, og := range operations(cs.ops, collapseAt) {
			k := opsKey(og.to)
			r := byOps[k]
			if r == nil {
				r = &Rule{To: og.to}
				byOps[k] = r
			}
			r.Evidence.merge(og.evidence)
			r.addSource(s)
		}
	}
	for _, k := range sortedKeys(byOps) {
		r := byOps[k]
		sort.Strings(r.Principals)
		sort.Strings(r.IPBlocks)
		p.Rules = append(p.Rules, *r)
	}
	sort.SliceStable(p.Rules, func(i, j int) bool { return ruleKey(p.Rules[i]) < ruleKey(p.Rules[j]) })
	return p
}

func (r *Rule) addSource(s source) {
	switch s.kind {
	case 0:
		r.Principals = append(r.Principals, s.value)
	case 1:
		r.IPBlocks = append(r.IPBlocks, s.value)
	default:
		r.AnySource = true
	}
}

// operations turns a source's observed operations into the `to` lists
// of its rules: TCP ports in one rule and HTTP operations in another,
// since Istio ignores an ALLOW rule with HTTP fields for a TCP
// connection, whatever else the rule holds. HTTP operations are, per
// port, the paths (collapsed) grouped by the exact set of methods
// seen on them, so that no method is allowed on a path it was not seen
// on. A TCP call allows its whole port; an unknown port (0) is left out
// of the operation, and TCP to an unknown port allows any operation.
func operations(ops map[op]*Evidence, collapseAt int) []opGroup {
	tcpPorts := map[uint32]bool{}
	paths := map[uint32]map[string]bool{}
	for o := range ops {
		if o.tcp {
			tcpPorts[o.port] = true
			continue
		}
		if paths[o.port] == nil {
			paths[o.port] = map[string]bool{}
		}
		paths[o.port][o.path] = true
	}
	if tcpPorts[0] || ops[op{}] != nil {
		return []opGroup{{evidence: evidenceOf(ops, func(op) bool { return true })}} // any operation: TCP, or HTTP with no port, method or path known
	}
	var tcp, out []Operation
	for port := range tcpPorts {
		tcp = append(tcp, Operation{Ports: portList(port)})
	}
	for port, ps := range paths {
		if tcpPorts[port] {
			continue // the whole port is allowed
		}
		pattern := collapse(ps, collapseAt)
		methods := map[string]map[string]bool{} // pattern → methods ("" = any)
		for o := range ops {
			if o.tcp || o.port != port {
				continue
			}
			pat := pattern[o.path]
			if methods[pat] == nil {
				methods[pat] = map[string]bool{}
			}
			methods[pat][o.method] = true
		}
		out = append(out, byMethods(port, methods)...)
	}
	var rules []opGroup
	for _, g := range []opGroup{
		{to: tcp, evidence: evidenceOf(ops, func(o op) bool { return tcpPorts[o.port] })},
		{to: out, evidence: evidenceOf(ops, func(o op) bool { return !tcpPorts[o.port] })},
	} {
		if len(g.to) > 0 {
			sort.Slice(g.to, func(i, j int) bool { return opKey(g.to[i]) < opKey(g.to[j]) })
			rules = append(rules, g)
		}
	}
	return rules
}

// opGroup is the `to` list of one rule and the evidence of the calls it
// covers.
type opGroup struct {
	to       []Operation
	evidence Evidence
}

func evidenceOf(ops map[op]*Evidence, covers func(op) bool) Evidence {
	var e Evidence
	for o, oe := range ops {
		if covers(o) {
			e.merge(*oe)
		}
	}
	return e
}

// byMethods groups patterns with the same method set into one operation.
func byMethods(port uint32, methods map[string]map[string]bool) []Operation {
	grouped := map[string]*Operation{}
	for pat, ms := range methods {
		o := Operation{Ports: portList(port)}
		if !ms[""] {
			o.Methods = sortedKeys(ms)
		}
		k := strings.Join(o.Methods, ",")
		if grouped[k] == nil {
			grouped[k] = &o
		}
		if pat != "" {
			grouped[k].Paths = append(grouped[k].Paths, pat)
		} else {
			grouped[k].Paths = nil
			grouped[k].anyPath()
		}
	}
	var out []Operation
	for _, k := range sortedKeys(grouped) {
		o := grouped[k]
		if o.Paths != nil && o.Paths[0] == anyPathMark {
			o.Paths = nil
		}
		sort.Strings(o.Paths)
		out = append(out, *o)
	}
	return out
}

// anyPathMark records that a path-less HTTP call (any path) was seen.
const anyPathMark = "\x00any"

func (o *Operation) anyPath() { o.Paths = []string{anyPathMark} }

func portList(p uint32) []string {
	if p == 0 {
		return nil
	}
	return []string{strconv.FormatUint(uint64(p), 10)}
}

func opKey(o Operation) string {
	return strings.Join(o.Ports, ",") + "|" + strings.Join(o.Methods, ",") + "|" + strings.Join(o.Paths, ",")
}

func opsKey(ops []Operation) string {
	if ops == nil {
		return "*"
	}
	ks := make([]string, len(ops))
	for i, o := range ops {
		ks[i] = opKey(o)
	}
	return strings.Join(ks, ";")
}

func ruleKey(r Rule) string {
	return strings.Join(r.Principals, ",") + "|" + strings.Join(r.IPBlocks, ",") + "|" + strconv.FormatBool(r.AnySource) + "|" + opsKey(r.To)
}

// principalParts splits spiffe://<td>/ns/<ns>/sa/<sa>.
func principalParts(p string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(p, "spiffe://")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

func labelString(l map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(l) {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// dnsLabel makes s usable in a metadata.name.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// nameUniquely suffixes names that repeat within a namespace.
func nameUniquely(ps []Policy) {
	seen := map[string]int{}
	for i := range ps {
		k := ps[i].Namespace + "/" + ps[i].Name
		seen[k]++
		if n := seen[k]; n > 1 {
			ps[i].Name += "-" + strconv.Itoa(n)
		}
	}
}
