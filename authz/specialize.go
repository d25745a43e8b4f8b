package authz

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Per-workload specialisation.
//
// The snapshot compiler holds one package per policy, each with its own
// partial set `matches`. Evaluating a workload through them costs a
// virtual-document lookup, a rule-index lookup and a cache entry per
// policy, and the index of each package only ever sees one policy's
// rules, so every policy's rules are tried on every request.
//
// specialize folds the matching rules of one workload's policies into a
// single partial set of a module of its own,
//
//	package ward.workload
//	m contains [<policy index>, <rule index>] if { <the rule's compiled body> }
//
// compiled once per distinct set of applicable policies (Engine.For caches
// it). The bodies are the snapshot compiler's output for the same rules,
// copied unchanged (references already resolved to data.ward.policy.* and
// data.ward.lib.*), so the decision is the same; what changes is that
// OPA's rule index now sees every rule of the workload at once and
// evaluates only those whose indexed conditions (==, in, startswith,
// endswith on the request) can hold — a workload with 100 policies
// evaluates the few whose method, principal and path prefix fit the
// request. The query is a single reference to `m`.

// workloadPackage is the package of the specialised module.
const workloadPackage = "ward.workload"

// workloadMatches is the query term: the set of [policy, rule] pairs that
// match the input.
var workloadMatches = ast.MustParseRef("data." + workloadPackage + ".m")

// specialize compiles the specialised module for ps, then partially
// evaluates it with the whole input unknown and returns a compiler of the
// residual (residualize). When partial evaluation fails or its residual
// grows past maxResidual rules, the specialised module itself is used: it
// decides the same, only slower.
func (e *Engine) specialize(ctx context.Context, ps []*Policy) (*ast.Compiler, error) {
	mod, err := e.workloadModule(ps)
	if err != nil {
		return nil, err
	}
	modules := make(map[string]*ast.Module, len(e.library)+len(ps)+1)
	for name, m := range e.library {
		modules[name] = m
	}
	for _, p := range ps {
		name := moduleName(p)
		modules[name] = e.parsed[name]
	}
	modules[workloadFile] = mod
	c := ast.NewCompiler()
	c.Compile(modules)
	if c.Failed() {
		return nil, fmt.Errorf("compile workload module of %d policies: %w", len(ps), c.Errors)
	}
	if isEmptyWorkload(mod) {
		return c, nil // nothing to evaluate
	}
	// Partial evaluation inlines every definition of every rule a body
	// refers to, so its output is the product of their counts: a rule
	// whose from, to and when each OR many values would explode (and For
	// runs on a workload's first check). It is attempted only when that
	// product is small.
	if n := residualSize(c, c.Modules[workloadFile]); n > maxResidual*len(mod.Rules) {
		e.cfg.Log.Info("authorization policies evaluated whole: their residual would have too many rules",
			"policies", len(ps), "rules", len(mod.Rules), "residual", n)
		return c, nil
	}
	residual, err := e.residualize(ctx, c, len(mod.Rules))
	if err != nil {
		e.cfg.Log.Warn("authorization policies not partially evaluated; evaluating them whole", "policies", len(ps), "error", err)
		return c, nil
	}
	return residual, nil
}

const workloadFile = "ward/workload.rego"

// maxResidual bounds the residual's rules, as a multiple of the
// specialised module's: inlining a rule whose from, to and when each OR
// several values multiplies them.
const maxResidual = 8

// residualize partially evaluates data.ward.workload.m[x] with input
// unknown. OPA inlines the helper rules (one residual rule per OR branch),
// drops the compiler's locals (startswith(input.source.principal, "…")
// instead of a local bound to it), so every condition on the request is a
// direct reference the rule index can use and evaluation takes fewer
// steps. Each residual query binds x to its [policy, rule] pair and
// becomes `m contains [policy, rule] if { the rest }`; support modules
// (what OPA could not inline) are compiled alongside.
func (e *Engine) residualize(ctx context.Context, c *ast.Compiler, rules int) (*ast.Compiler, error) {
	pq, err := rego.New(rego.Compiler(c), rego.Query("data."+workloadPackage+".m[x]"),
		rego.Unknowns([]string{"input"})).Partial(ctx)
	if err != nil {
		return nil, fmt.Errorf("partial evaluation: %w", err)
	}
	if len(pq.Queries) > maxResidual*max(rules, 1) {
		return nil, fmt.Errorf("residual of %d rules for %d", len(pq.Queries), rules)
	}
	mod := ast.MustParseModuleWithOpts("package "+workloadPackage, regoV1)
	for _, q := range pq.Queries {
		key, body, ok := residualRule(q)
		if !ok {
			return nil, fmt.Errorf("residual query %v binds no ground [policy, rule] pair", q)
		}
		mod.Rules = append(mod.Rules, workloadRule(mod, key, body))
	}
	if len(mod.Rules) == 0 {
		mod = ast.MustParseModuleWithOpts("package "+workloadPackage+"\n\nm := set()", regoV1)
	}
	modules := make(map[string]*ast.Module, len(e.library)+len(pq.Support)+1)
	for name, m := range e.library {
		modules[name] = m
	}
	for i, m := range pq.Support {
		modules[fmt.Sprintf("ward/support/%d.rego", i)] = m
	}
	modules[workloadFile] = mod
	rc := ast.NewCompiler()
	rc.Compile(modules)
	if rc.Failed() {
		return nil, fmt.Errorf("compile residual: %w", rc.Errors)
	}
	return rc, nil
}

// maxBranches caps residualSize's arithmetic.
const maxBranches = 1 << 20

// residualSize bounds the number of residual rules partial evaluation
// produces for mod: per rule, the product over the rules and functions
// its body refers to of the sum of their definitions' own sizes.
func residualSize(c *ast.Compiler, mod *ast.Module) int {
	memo := map[string]int{}
	total := 0
	for _, r := range mod.Rules {
		total = min(maxBranches, total+bodyBranches(c, r.Body, memo, 0))
	}
	return total
}

func bodyBranches(c *ast.Compiler, body ast.Body, memo map[string]int, depth int) int {
	n := 1
	ast.WalkRefs(body, func(ref ast.Ref) bool {
		if !ref.HasPrefix(ast.DefaultRootRef) {
			return false
		}
		n = min(maxBranches, n*refBranches(c, ref.GroundPrefix(), memo, depth))
		return false
	})
	return n
}

// refBranches sums the sizes of the definitions of the rule or function
// at ref (1 for a base document or an unknown ref).
func refBranches(c *ast.Compiler, ref ast.Ref, memo map[string]int, depth int) int {
	key := ref.String()
	if n, ok := memo[key]; ok {
		return n
	}
	rules := c.GetRulesExact(ref)
	if len(rules) == 0 || depth > 16 {
		return 1
	}
	memo[key] = maxBranches // a cycle (none in valid Rego) counts as too many
	sum := 0
	for _, r := range rules {
		sum = min(maxBranches, sum+bodyBranches(c, r.Body, memo, depth+1))
	}
	memo[key] = max(sum, 1)
	return memo[key]
}

// residualRule splits a residual query into the [policy, rule] pair it
// binds x to and the other expressions.
func residualRule(q ast.Body) (*ast.Term, ast.Body, bool) {
	var key *ast.Term
	body := make(ast.Body, 0, len(q))
	for _, expr := range q {
		if k, ok := bindsX(expr); ok && key == nil {
			key = k
			continue
		}
		body = append(body, expr)
	}
	if key == nil || !key.IsGround() {
		return nil, nil, false
	}
	if _, _, ok := matchPair(key); !ok {
		return nil, nil, false
	}
	if len(body) == 0 {
		body = ast.NewBody(ast.NewExpr(ast.BooleanTerm(true)))
	}
	return key, body, true
}

// bindsX matches `x = term` (either side).
func bindsX(e *ast.Expr) (*ast.Term, bool) {
	if !e.IsEquality() || e.Negated || len(e.With) > 0 {
		return nil, false
	}
	a, b := e.Operand(0), e.Operand(1)
	if a.Equal(ast.VarTerm("x")) {
		return b, true
	}
	if b.Equal(ast.VarTerm("x")) {
		return a, true
	}
	return nil, false
}

// workloadModule builds the specialised module from the snapshot
// compiler's rules for ps.
func (e *Engine) workloadModule(ps []*Policy) (*ast.Module, error) {
	mod := ast.MustParseModuleWithOpts("package "+workloadPackage, regoV1)
	for pi, p := range ps {
		compiled := e.compiler.Modules[moduleName(p)]
		if compiled == nil {
			return nil, fmt.Errorf("%s: no compiled module", p.ID())
		}
		for _, r := range compiled.Rules {
			if !isMatchesRule(r) {
				continue
			}
			if r.Head.Key == nil { // `matches := set()`: a policy without rules
				continue
			}
			ri, ok := r.Head.Key.Value.(ast.Number)
			if !ok {
				return nil, fmt.Errorf("%s: rule key %v is not an index", p.ID(), r.Head.Key)
			}
			key := ast.ArrayTerm(ast.InternedTerm(pi), ast.NewTerm(ri))
			mod.Rules = append(mod.Rules, workloadRule(mod, key, r.Body.Copy()))
		}
	}
	if len(mod.Rules) == 0 {
		// m must exist for the query to compile; it matches nothing.
		return ast.MustParseModuleWithOpts("package "+workloadPackage+"\n\nm := set()", regoV1), nil
	}
	return mod, nil
}

// isEmptyWorkload reports whether mod is the `m := set()` of a workload
// whose policies have no rules.
func isEmptyWorkload(mod *ast.Module) bool {
	return len(mod.Rules) == 1 && mod.Rules[0].Head.Key == nil
}

func isMatchesRule(r *ast.Rule) bool {
	ref := r.Head.Ref()
	return len(ref) == 1 && ref[0].Value.Compare(ast.Var("matches")) == 0
}

// workloadRule is `m contains key if body`, key a [policy, rule] pair.
func workloadRule(mod *ast.Module, key *ast.Term, body ast.Body) *ast.Rule {
	head := ast.NewHead(ast.Var("m"), key)
	head.Reference = ast.Ref{ast.VarTerm("m")}
	return &ast.Rule{Head: head, Body: body, Module: mod, Location: body.Loc()}
}

var regoV1 = ast.ParserOptions{RegoVersion: ast.RegoV1}

// moduleName is the file name of a policy's module in the engine.
func moduleName(p *Policy) string { return p.Namespace + "/" + p.Name + ".rego" }
