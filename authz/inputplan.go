package authz

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// An inputPlan says which attributes of the input document the compiled
// rules of one workload read. It is derived from the rules themselves
// (every module of the workload's compiler: the library, the policies,
// the specialised module), not from the policy model, so it holds by
// construction: the input is built with only these attributes, and the
// decision cache key is rendered from the same values. Two requests with
// equal keys therefore give OPA equal inputs, so equal decisions.
//
// A read the analysis does not recognise (the whole input, a whole
// object, a header or claim named by a variable) makes the plan full: the
// complete input is built and nothing is cached.
type inputPlan struct {
	leaves  [numLeaves]bool
	headers []string   // request.headers keys read, sorted
	claims  [][]string // auth.claims paths read
	full    bool
}

// leaf is one scalar (or, for audiences, list) attribute of the input.
type leaf uint8

const (
	leafHTTP leaf = iota
	leafSourceIP
	leafSourcePrincipal
	leafSourceNamespace
	leafSourceSA
	leafSourceTD
	leafRemoteIP
	leafDestIP
	leafDestPort
	leafSNI
	leafMethod
	leafPath
	leafHost
	leafAuthPrincipal
	leafAudiences
	leafPresenter
	numLeaves
)

// leafPaths are the input paths of the leaves, in leaf order.
var leafPaths = [numLeaves][]string{
	{"http"},
	{"source", "ip"}, {"source", "principal"}, {"source", "namespace"}, {"source", "service_account"}, {"source", "trust_domain"},
	{"remote", "ip"},
	{"destination", "ip"}, {"destination", "port"},
	{"sni"},
	{"request", "method"}, {"request", "path"}, {"request", "host"},
	{"auth", "principal"}, {"auth", "audiences"}, {"auth", "presenter"},
}

// planInput analyses every rule of c. The compiler hoists references
// out of calls into locals (`__local1__ = input.request.headers;
// object.get(__local1__, "x", null, __local2__)`), so within each rule a
// variable unified with an input reference stands for that reference.
func planInput(c *ast.Compiler) *inputPlan {
	pl := &inputPlan{}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			pl.rule(r)
		}
	}
	slices.Sort(pl.headers)
	pl.headers = slices.Compact(pl.headers)
	return pl
}

// rule records the reads of one rule (its else chain included).
func (pl *inputPlan) rule(r *ast.Rule) {
	w := &planWalk{pl: pl, aliases: map[ast.Var]ast.Ref{}, defs: map[*ast.Expr]bool{}}
	ast.WalkExprs(r, func(e *ast.Expr) bool {
		v, ref, ok := inputAlias(e)
		if !ok {
			return false
		}
		if prev, dup := w.aliases[v]; dup && !prev.Equal(ref) {
			pl.full = true // one name for two references: do not guess
		}
		w.aliases[v] = ref
		w.defs[e] = true
		return false
	})
	ast.NewGenericVisitor(w.visit).Walk(r)
}

// inputAlias matches `v = input...` (either side).
func inputAlias(e *ast.Expr) (ast.Var, ast.Ref, bool) {
	if !e.IsEquality() || e.Negated || len(e.With) > 0 {
		return "", nil, false
	}
	a, b := e.Operand(0), e.Operand(1)
	for range 2 {
		if v, ok := a.Value.(ast.Var); ok {
			if r, ok := b.Value.(ast.Ref); ok && r.HasPrefix(ast.InputRootRef) {
				return v, r, true
			}
		}
		a, b = b, a
	}
	return "", nil, false
}

// planWalk walks one rule.
type planWalk struct {
	pl      *inputPlan
	aliases map[ast.Var]ast.Ref
	defs    map[*ast.Expr]bool // the alias definitions: a use reads, not these
}

func (w *planWalk) visit(x any) bool {
	pl := w.pl
	switch x := x.(type) {
	case *ast.Expr:
		if w.defs[x] {
			return true
		}
		if x.IsCall() {
			return w.objectGet(x.Operator(), x.Operands())
		}
	case ast.Call:
		if op, ok := x[0].Value.(ast.Ref); ok {
			return w.objectGet(op, x[1:])
		}
	case ast.Ref:
		if x.HasPrefix(ast.InputRootRef) {
			pl.ref(x)
			for _, t := range x[1:] {
				ast.NewGenericVisitor(w.visit).Walk(t)
			}
			return true
		}
	case ast.Var:
		if r, ok := w.aliases[x]; ok {
			pl.ref(r)
		} else if x.Equal(ast.InputRootDocument.Value) { // a bare input outside a ref
			pl.full = true
		}
	}
	return false
}

// resolve returns the input reference t stands for, if any.
func (w *planWalk) resolve(t *ast.Term) (ast.Ref, bool) {
	switch v := t.Value.(type) {
	case ast.Ref:
		return v, v.HasPrefix(ast.InputRootRef)
	case ast.Var:
		r, ok := w.aliases[v]
		return r, ok
	}
	return nil, false
}

// objectGet records object.get(input.request.headers, "<name>", d) and
// object.get(input.auth.claims, <constant path>, d) as reads of that
// header or claim, and walks the other operands. Any other call is walked
// as usual (returns false).
func (w *planWalk) objectGet(op ast.Ref, args []*ast.Term) bool {
	pl := w.pl
	if op == nil || !op.Equal(ast.ObjectGet.Ref()) || len(args) < 3 {
		return false
	}
	obj, ok := w.resolve(args[0])
	if !ok {
		return false
	}
	switch path := constPrefix(obj); {
	case len(path) != len(obj)-1:
		return false
	case slices.Equal(path, []string{"request", "headers"}):
		name, ok := args[1].Value.(ast.String)
		if !ok {
			return false
		}
		pl.headers = append(pl.headers, string(name))
	case slices.Equal(path, []string{"auth", "claims"}):
		keys, ok := constPath(args[1])
		if !ok {
			return false
		}
		pl.claims = append(pl.claims, keys)
	default:
		return false
	}
	for _, t := range args[1:] {
		ast.NewGenericVisitor(w.visit).Walk(t)
	}
	return true
}

// ref records a reference into input.
func (pl *inputPlan) ref(r ast.Ref) {
	path := constPrefix(r)
	for l, lp := range leafPaths {
		if len(path) >= len(lp) && slices.Equal(path[:len(lp)], lp) {
			pl.leaves[l] = true
			return
		}
	}
	switch {
	case len(path) >= 3 && path[0] == "request" && path[1] == "headers":
		pl.headers = append(pl.headers, path[2])
	case len(path) >= 3 && path[0] == "auth" && path[1] == "claims":
		pl.claims = append(pl.claims, path[2:])
	default:
		pl.full = true
	}
}

// constPrefix returns the leading constant string keys of an input ref.
func constPrefix(r ast.Ref) []string {
	var out []string
	for _, t := range r[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		out = append(out, string(s))
	}
	return out
}

// constPath reads object.get's key argument: a string or an array of
// strings.
func constPath(t *ast.Term) ([]string, bool) {
	switch v := t.Value.(type) {
	case ast.String:
		return []string{string(v)}, true
	case *ast.Array:
		out := make([]string, 0, v.Len())
		for i := range v.Len() {
			s, ok := v.Elem(i).Value.(ast.String)
			if !ok {
				return nil, false
			}
			out = append(out, string(s))
		}
		return out, true
	}
	return nil, false
}

func (pl *inputPlan) any(ls ...leaf) bool {
	for _, l := range ls {
		if pl.leaves[l] {
			return true
		}
	}
	return false
}

// value is a leaf's value in the input (ok=false: null). The input
// builder and the cache key both read leaves only through it.
func (r *Request) value(l leaf) (string, bool) {
	var s string
	switch l {
	case leafSourceIP:
		s = r.Source.IP
	case leafSourcePrincipal:
		s = strings.TrimPrefix(r.Source.Principal, "spiffe://")
	case leafSourceNamespace, leafSourceSA:
		ns, sa, ok := principalParts(strings.TrimPrefix(r.Source.Principal, "spiffe://"))
		if !ok {
			return "", false
		}
		if s = ns; l == leafSourceSA {
			s = ns + "/" + sa
		}
		return s, true
	case leafSourceTD:
		return trustDomain(r.Source.Principal)
	case leafRemoteIP:
		if s = r.RemoteIP; s == "" {
			s = r.Source.IP
		}
	case leafDestIP:
		s = r.Destination.IP
	case leafDestPort:
		if r.Destination.Port == 0 {
			return "", false
		}
		return strconv.FormatUint(uint64(r.Destination.Port), 10), true
	case leafSNI:
		s = r.SNI
	case leafMethod, leafPath, leafHost:
		if r.HTTP == nil {
			return "", false
		}
		s = r.HTTP.value(l)
	case leafAuthPrincipal, leafPresenter:
		if r.Auth == nil {
			return "", false
		}
		if s = r.Auth.Principal; l == leafPresenter {
			s = r.Auth.Presenter
		}
	}
	return s, s != ""
}

func (h *HTTPRequest) value(l leaf) string {
	switch l {
	case leafMethod:
		return h.Method
	case leafPath:
		return h.matchPath()
	}
	return strings.ToLower(h.Host)
}

// input builds the input document with only the planned attributes; the
// shape (which objects exist, null for absent values) is the complete
// input's, less what no rule reads.
func (pl *inputPlan) input(r *Request) ast.Value {
	if pl.full {
		return r.input(nil)
	}
	var items [7][2]*ast.Term
	n := 0
	add := func(k *ast.Term, v *ast.Term) { items[n] = [2]*ast.Term{k, v}; n++ }
	if pl.leaves[leafHTTP] {
		add(kHttp, ast.InternedTerm(r.HTTP != nil))
	}
	if pl.any(leafSourceIP, leafSourcePrincipal, leafSourceNamespace, leafSourceSA, leafSourceTD) {
		add(kSource, pl.object(r, []*ast.Term{kIp, kPrincipal, kNamespace, kServiceAccount, kTrustDomain}, leafSourceIP))
	}
	if pl.leaves[leafRemoteIP] {
		add(kRemote, pl.object(r, []*ast.Term{kIp}, leafRemoteIP))
	}
	if pl.any(leafDestIP, leafDestPort) {
		add(kDestination, pl.object(r, []*ast.Term{kIp, kPort}, leafDestIP))
	}
	if pl.leaves[leafSNI] {
		add(kSni, pl.term(r, leafSNI))
	}
	if pl.any(leafMethod, leafPath, leafHost) || len(pl.headers) > 0 {
		add(kRequest, pl.request(r))
	}
	if pl.any(leafAuthPrincipal, leafAudiences, leafPresenter) || len(pl.claims) > 0 {
		add(kAuth, pl.auth(r))
	}
	return ast.NewObject(items[:n]...)
}

func (pl *inputPlan) term(r *Request, l leaf) *ast.Term {
	if s, ok := r.value(l); ok {
		return ast.StringTerm(s)
	}
	return ast.NullTerm()
}

// object renders the planned leaves first, first+1, ... under keys.
func (pl *inputPlan) object(r *Request, keys []*ast.Term, first leaf) *ast.Term {
	items := make([][2]*ast.Term, 0, len(keys))
	for i, k := range keys {
		if l := first + leaf(i); pl.leaves[l] {
			items = append(items, [2]*ast.Term{k, pl.term(r, l)})
		}
	}
	return ast.NewTerm(ast.NewObject(items...))
}

func (pl *inputPlan) request(r *Request) *ast.Term {
	if r.HTTP == nil {
		return ast.NullTerm()
	}
	o := pl.object(r, []*ast.Term{kMethod, kPath, kHost}, leafMethod)
	if len(pl.headers) > 0 {
		hs := make([][2]*ast.Term, 0, len(pl.headers))
		for _, name := range pl.headers {
			if v, ok := headerValue(r.HTTP.Headers, name); ok {
				hs = append(hs, [2]*ast.Term{ast.StringTerm(name), ast.StringTerm(v)})
			}
		}
		o.Value.(ast.Object).Insert(kHeaders, ast.NewTerm(ast.NewObject(hs...)))
	}
	return o
}

func (pl *inputPlan) auth(r *Request) *ast.Term {
	if r.Auth == nil {
		return ast.NewTerm(nullAuth)
	}
	o := pl.object(r, []*ast.Term{kPrincipal}, leafAuthPrincipal)
	obj := o.Value.(ast.Object)
	if pl.leaves[leafAudiences] {
		full := r.Auth.input() // audiences are rendered by Auth.input only
		obj.Insert(kAudiences, full.Get(kAudiences))
	}
	if pl.leaves[leafPresenter] {
		obj.Insert(kPresenter, pl.term(r, leafPresenter))
	}
	if len(pl.claims) > 0 {
		claims := ast.ObjectTerm()
		if r.Auth.Claims != nil {
			if v, err := ast.InterfaceToValue(r.Auth.Claims); err == nil {
				claims = ast.NewTerm(v)
			}
		}
		obj.Insert(kClaims, claims)
	}
	return o
}

// key renders, length-prefixed (no value can forge a separator), exactly
// the planned attributes as input renders them. ok is false for a full
// plan: such a workload is not cached.
func (pl *inputPlan) key(r *Request) (string, bool) {
	if pl.full {
		return "", false
	}
	w := &keyWriter{}
	for l := range numLeaves {
		if !pl.leaves[l] {
			continue
		}
		switch l {
		case leafHTTP:
			w.flag(r.HTTP != nil)
		case leafAudiences:
			w.flag(r.Auth != nil)
			if r.Auth != nil {
				w.b = binary.AppendUvarint(w.b, uint64(len(r.Auth.Audiences)))
				for _, a := range r.Auth.Audiences {
					w.add(a)
				}
			}
		default:
			s, ok := r.value(l)
			w.flag(ok)
			w.add(s)
		}
	}
	pl.extraKey(w, r)
	return string(w.b), true
}

// extraKey adds the headers and claims read.
func (pl *inputPlan) extraKey(w *keyWriter, r *Request) {
	if len(pl.headers) > 0 {
		w.flag(r.HTTP != nil)
		for _, name := range pl.headers {
			if r.HTTP == nil {
				break
			}
			v, ok := headerValue(r.HTTP.Headers, name)
			w.flag(ok)
			w.add(v)
		}
	}
	if len(pl.claims) > 0 {
		w.flag(r.Auth != nil)
		for _, path := range pl.claims {
			if r.Auth == nil {
				break
			}
			v, ok := claimAt(r.Auth.Claims, path)
			w.flag(ok)
			j, _ := json.Marshal(v) // claims are JSON values
			w.add(string(j))
		}
	}
}

// reads lists the planned attributes, sorted: leaf paths joined with ".",
// request.headers[<name>] and request.auth.claims[<path>] (explain and
// tests); a full plan is "input".
func (pl *inputPlan) reads() []string {
	if pl.full {
		return []string{"input"}
	}
	var out []string
	for l, read := range pl.leaves {
		if read {
			out = append(out, strings.Join(leafPaths[l], "."))
		}
	}
	for _, h := range pl.headers {
		out = append(out, "request.headers["+h+"]")
	}
	for _, c := range pl.claims {
		out = append(out, "request.auth.claims["+strings.Join(c, ".")+"]")
	}
	slices.Sort(out)
	return slices.Compact(out)
}
