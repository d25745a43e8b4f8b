package authz

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
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

// specialize compiles the specialised module for ps in a compiler of its
// own, holding the library, ps' modules (for their helper rules) and the
// specialised module.
func (e *Engine) specialize(ps []*Policy) (*ast.Compiler, *ast.Module, error) {
	mod, err := e.workloadModule(ps)
	if err != nil {
		return nil, nil, err
	}
	modules := make(map[string]*ast.Module, len(e.library)+len(ps)+1)
	for name, m := range e.library {
		modules[name] = m
	}
	for _, p := range ps {
		name := moduleName(p)
		modules[name] = e.parsed[name]
	}
	modules["ward/workload.rego"] = mod
	c := ast.NewCompiler()
	c.Compile(modules)
	if c.Failed() {
		return nil, nil, fmt.Errorf("compile workload module of %d policies: %w", len(ps), c.Errors)
	}
	return c, c.Modules["ward/workload.rego"], nil
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
			mod.Rules = append(mod.Rules, workloadRule(mod, pi, ri, r.Body.Copy()))
		}
	}
	if len(mod.Rules) == 0 {
		// m must exist for the query to compile; it matches nothing.
		return ast.MustParseModuleWithOpts("package "+workloadPackage+"\n\nm := set()", regoV1), nil
	}
	return mod, nil
}

func isMatchesRule(r *ast.Rule) bool {
	ref := r.Head.Ref()
	return len(ref) == 1 && ref[0].Value.Compare(ast.Var("matches")) == 0
}

// workloadRule is `m contains [pi, ri] if body`.
func workloadRule(mod *ast.Module, pi int, ri ast.Number, body ast.Body) *ast.Rule {
	key := ast.ArrayTerm(ast.InternedTerm(pi), ast.NewTerm(ri))
	head := ast.NewHead(ast.Var("m"), key)
	head.Reference = ast.Ref{ast.VarTerm("m")}
	return &ast.Rule{Head: head, Body: body, Module: mod, Location: body.Loc()}
}

var regoV1 = ast.ParserOptions{RegoVersion: ast.RegoV1}

// moduleName is the file name of a policy's module in the engine.
func moduleName(p *Policy) string { return p.Namespace + "/" + p.Name + ".rego" }
