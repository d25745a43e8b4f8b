package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/policies"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	Log *slog.Logger
	// Timeout bounds one evaluation; on expiry the request is denied.
	// Default 50ms.
	Timeout time.Duration
	// DecisionCache bounds the decisions memoised per workload policy set
	// (default 10000; negative disables). Keys hold exactly the request
	// attributes the policies read; a policy set with a CUSTOM rego
	// provider (which sees the whole request) is never cached.
	DecisionCache int
}

// Engine holds every AuthorizationPolicy of one snapshot compiled to Rego
// in a single OPA compiler (parsed and compiled once per snapshot), and a
// prepared query per distinct set of applicable policies (prepared once per
// workload shape and reused for every request).
type Engine struct {
	cfg      EngineConfig
	snap     *mesh.Snapshot
	policies map[mesh.Key]*Policy
	invalid  map[mesh.Key]error
	compiler *ast.Compiler
	// parsed holds every module the compiler compiled, as parsed (the
	// compiler works on copies); library is the embedded library's
	// subset. Workload compilers (specialize) are built from them.
	parsed    map[string]*ast.Module
	library   map[string]*ast.Module
	store     storage.Store // empty: policies read only input
	providers map[string]*provider

	pathLevel mesh.PathNormalization // the snapshot's pathNormalization
	hash      string                 // PolicyHash of the snapshot compiled
	prepared  *preparedSet           // shared by engines with the same hash
	workloads *workloadMemo          // this snapshot's For results
}

// workloadMemo memoises For by namespace and labels for one snapshot
// (which policies apply can depend on services, through targetRefs, so a
// new snapshot starts a new memo). Selecting the policies and rendering
// the set's key cost as much as an evaluation at 100 policies; a check
// now pays one map lookup. It holds at most maxWorkloadMemo shapes (the
// labels come from callers); beyond that For computes as before.
type workloadMemo struct {
	m sync.Map // workloadKey → *Prepared
	n atomic.Int64
}

const maxWorkloadMemo = 4096

// workloadKey renders ns and l unambiguously (length-prefixed, keys sorted).
func workloadKey(ns string, l mesh.Labels) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w := &keyWriter{b: make([]byte, 0, 64)}
	w.add(ns)
	for _, k := range keys {
		w.add(k)
		w.add(l[k])
	}
	return string(w.b)
}

// preparedSet caches Prepared queries by applicable policy set. A set is
// prepared once: a check (or the server's background preparation) that
// asks for a set being prepared waits for that preparation rather than
// repeating it — at 1,000 policies one costs half a second of CPU.
type preparedSet struct {
	mu sync.Mutex
	m  map[string]*prepEntry
}

// prepEntry is one set's preparation: done closes when p or err is set.
type prepEntry struct {
	done chan struct{}
	p    *Prepared
	err  error
}

// ready returns the set's Prepared if its preparation has finished well.
func (ps *preparedSet) ready(key string) (*Prepared, bool) {
	ps.mu.Lock()
	en, ok := ps.m[key]
	ps.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-en.done:
		return en.p, en.err == nil
	default:
		return nil, false
	}
}

// NewEngine compiles every AuthorizationPolicy and CUSTOM rego provider of
// snap. Invalid policies do not fail the engine: workloads they apply to
// are denied everything (a policy that cannot be enforced must not open a
// hole), and Invalid reports them.
func NewEngine(snap *mesh.Snapshot, cfg EngineConfig) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.DecisionCache == 0 {
		cfg.DecisionCache = 10000
	}
	e := &Engine{cfg: cfg, snap: snap, policies: map[mesh.Key]*Policy{}, invalid: map[mesh.Key]error{},
		prepared: &preparedSet{m: map[string]*prepEntry{}}, workloads: &workloadMemo{}, store: inmem.New(), hash: PolicyHash(snap),
		pathLevel: snap.Mesh().PathNormalizationLevel()}
	modules, err := e.compilePolicies()
	if err != nil {
		return nil, err
	}
	e.parsed = modules
	e.compiler = ast.NewCompiler()
	e.compiler.Compile(modules)
	if e.compiler.Failed() {
		return nil, fmt.Errorf("compile authorization policies of snapshot %s: %w", snap.Version(), e.compiler.Errors)
	}
	e.providers, err = compileProviders(snap.Mesh().ExtensionProviders)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Engine) compilePolicies() (map[string]*ast.Module, error) {
	modules := map[string]*ast.Module{}
	e.library = map[string]*ast.Module{}
	for name, src := range policies.Library() {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse embedded library %s: %w", name, err)
		}
		modules[name] = m
		e.library[name] = m
	}
	for _, c := range e.snap.All(mesh.KindAuthorizationPolicy) {
		p, err := FromConfig(c)
		if err != nil {
			e.invalid[c.Key()] = err
			e.cfg.Log.Warn("authorization policy rejected", "kind", c.Kind, "namespace", c.Namespace, "name", c.Name, "error", err)
			continue
		}
		mod := CompileRego(p)
		m, err := ast.ParseModuleWithOpts(mod.Name, mod.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse compiled module of %s: %w", c.Key(), err)
		}
		e.policies[c.Key()] = p
		modules[mod.Name] = m
	}
	return modules, nil
}

// Update returns an engine for snap. When snap's AuthorizationPolicies
// and extension providers are those this engine compiled (PolicyHash), the
// compiled policies, prepared queries and decision caches are reused and
// only the snapshot (for workload lookups) changes; otherwise it compiles
// afresh. Most snapshots change services and workloads, not policies.
func (e *Engine) Update(snap *mesh.Snapshot) (*Engine, error) {
	if PolicyHash(snap) != e.hash {
		return NewEngine(snap, e.cfg)
	}
	n := *e
	n.snap = snap
	n.workloads = &workloadMemo{}
	return &n, nil
}

// PolicyHash hashes what an engine compiles from a snapshot: every
// AuthorizationPolicy (key, dry-run annotation, spec) and the extension
// providers.
func PolicyHash(snap *mesh.Snapshot) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, c := range snap.All(mesh.KindAuthorizationPolicy) {
		b, _ := opts.Marshal(c.Spec) // deterministic marshal of a decoded message
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", c.Key(), c.Annotations[mesh.AnnotationDryRun], len(b))
		h.Write(b)
	}
	hashProviders(h, snap.Mesh().ExtensionProviders)
	// The path level changes what the policies match (and the decision
	// cache keys): a change recompiles.
	fmt.Fprintf(h, "path:%s\x00", snap.Mesh().PathNormalizationLevel())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Snapshot returns the snapshot the engine was built from.
func (e *Engine) Snapshot() *mesh.Snapshot { return e.snap }

// Invalid returns the policies that failed validation, by key.
func (e *Engine) Invalid() map[mesh.Key]error { return e.invalid }

// Policy returns the compiled model of a valid policy.
func (e *Engine) Policy(k mesh.Key) (*Policy, bool) {
	p, ok := e.policies[k]
	return p, ok
}

// For returns the prepared evaluation for a workload in namespace ns with
// labels l. Workloads with the same applicable policies share one.
func (e *Engine) For(ctx context.Context, ns string, l mesh.Labels) (*Prepared, error) {
	wk := workloadKey(ns, l)
	if p, ok := e.workloads.m.Load(wk); ok {
		return p.(*Prepared), nil
	}
	p, err := e.forPolicies(ctx, ns, l)
	if err == nil && e.workloads.n.Add(1) <= maxWorkloadMemo {
		e.workloads.m.Store(wk, p)
	}
	return p, err
}

// Ready returns the prepared evaluation for a workload if it is ready
// now: memoised for this snapshot, or its policy set already prepared. It
// never prepares, so a caller can choose what to do instead of paying
// the preparation on a request (extauthz serves the previous snapshot's
// engine for a bounded time while the new one prepares).
func (e *Engine) Ready(ns string, l mesh.Labels) (*Prepared, bool) {
	wk := workloadKey(ns, l)
	if p, ok := e.workloads.m.Load(wk); ok {
		return p.(*Prepared), true
	}
	p, ok := e.prepared.ready(setKey(PoliciesFor(e.snap, ns, l)))
	if ok && e.workloads.n.Add(1) <= maxWorkloadMemo {
		e.workloads.m.Store(wk, p)
	}
	return p, ok
}

// PolicyHash returns the PolicyHash of the engine's snapshot.
func (e *Engine) PolicyHash() string { return e.hash }

// forPolicies selects the policies that apply and returns their Prepared,
// preparing the set once however many callers ask for it at the same time.
// A caller whose ctx ends while another prepares the set gives up waiting
// (its check fails closed); the preparation itself carries on.
func (e *Engine) forPolicies(ctx context.Context, ns string, l mesh.Labels) (*Prepared, error) {
	cfgs := PoliciesFor(e.snap, ns, l)
	key := setKey(cfgs)
	e.prepared.mu.Lock()
	en, ok := e.prepared.m[key]
	if !ok {
		en = &prepEntry{done: make(chan struct{})}
		e.prepared.m[key] = en
	}
	e.prepared.mu.Unlock()
	if ok {
		select {
		case <-en.done:
			return en.p, en.err
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the preparation of %d policies: %w", len(cfgs), ctx.Err())
		}
	}
	en.p, en.err = e.prepare(ctx, cfgs)
	if en.err != nil {
		// Not cached: a later check tries again (and fails closed again).
		e.prepared.mu.Lock()
		delete(e.prepared.m, key)
		e.prepared.mu.Unlock()
	}
	close(en.done)
	return en.p, en.err
}

func setKey(cfgs []*mesh.Config) string {
	var b strings.Builder
	for _, c := range cfgs {
		b.WriteString(c.Namespace)
		b.WriteByte('/')
		b.WriteString(c.Name)
		b.WriteByte(0)
	}
	return b.String()
}

func (e *Engine) prepare(ctx context.Context, cfgs []*mesh.Config) (*Prepared, error) {
	p := &Prepared{engine: e}
	for _, c := range cfgs {
		if err, bad := e.invalid[c.Key()]; bad {
			p.invalid = append(p.invalid, fmt.Errorf("%s is invalid: %w", PolicyID(c.Namespace, c.Name), err))
			continue
		}
		pol := e.policies[c.Key()]
		p.policies = append(p.policies, pol)
	}
	// The query returns the set of matching [policy, rule] index pairs of
	// the workload's specialised module (specialize.go); the decision
	// order is applied in Go (Decide). It is the same order as the
	// library's decide(), which a test holds them to, but folding it in
	// Rego costs more than all the matching.
	//
	// The query is compiled once here and run with topdown directly: the
	// rego package's per-evaluation setup (metrics, a cancel goroutine,
	// converting results to Go values) cost as much as the matching.
	// Not the check's context: the result is shared by every later check,
	// and a caller giving up must not leave it unspecialised.
	var err error
	if p.compiler, err = e.specialize(context.WithoutCancel(ctx), p.policies); err != nil {
		return nil, err
	}
	body := ast.NewBody(ast.Equality.Expr(ast.VarTerm(resultVar), ast.NewTerm(workloadMatches)))
	if p.query, err = p.compiler.QueryCompiler().Compile(body); err != nil {
		return nil, fmt.Errorf("compile authorization query for %d policies: %w", len(cfgs), err)
	}
	p.plan = planInput(p.compiler)
	p.names = newRuleNames(p.policies)
	if e.cfg.DecisionCache > 0 && !p.plan.full && !e.usesRegoProvider(p.policies) {
		p.cache = newDecisionCache(e.cfg.DecisionCache)
	}
	return p, nil
}

const resultVar = "ward_matches"

// noMetrics is given to every evaluation: topdown otherwise allocates a
// metrics registry per query that nobody reads.
var noMetrics = metrics.NoOp()

// Prepared evaluates requests against one set of applicable policies.
type Prepared struct {
	engine   *Engine
	policies []*Policy
	plan     *inputPlan // the input attributes the compiled rules read
	names    *ruleNames
	invalid  []error
	compiler *ast.Compiler // the library, the policies and their specialised module
	query    ast.Body
	cache    *decisionCache // nil: not cached
}

// usesRegoProvider reports whether a CUSTOM policy consults an in-process
// rego provider, whose decision depends on the whole request.
func (e *Engine) usesRegoProvider(ps []*Policy) bool {
	for _, p := range ps {
		if p.Action == ActionCustom {
			if prov, ok := e.providers[p.Provider]; ok && !prov.external {
				return true
			}
		}
	}
	return false
}

// Policies returns the applicable policies in evaluation order.
func (p *Prepared) Policies() []*Policy { return p.policies }

// ErrEval marks a failed evaluation; the request is denied.
var ErrEval = errors.New("authorization evaluation failed")

// Decide evaluates req. On any error the returned decision denies (fail
// closed) and the error says why.
func (p *Prepared) Decide(ctx context.Context, req *Request) (*Decision, error) {
	if len(p.invalid) > 0 {
		return failClosed(ReasonInvalidPolicy, p.invalid[0]), p.invalid[0]
	}
	// Match the path the proxies' HTTP connection manager matches; a path
	// it would reject (400) is denied.
	req, err := normalized(req, p.engine.pathLevel)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrBadCheckRequest, err)
		return failClosed(ReasonBadRequest, err), err
	}
	if p.cache == nil {
		return p.decide(ctx, req)
	}
	key, _ := p.plan.key(req) // a full plan has no cache
	if d, ok := p.cache.get(key); ok {
		return &d, nil
	}
	d, err := p.decide(ctx, req)
	if err == nil {
		p.cache.put(key, *d)
	}
	return d, err
}

// decide evaluates req without the cache. One deadline bounds the
// evaluation and any in-process CUSTOM provider together.
func (p *Prepared) decide(ctx context.Context, req *Request) (*Decision, error) {
	deadline := time.Now().Add(p.engine.cfg.Timeout)
	matches, err := p.firstMatches(ctx, req)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrEval, err)
		return failClosed(ReasonError, err), err
	}
	d := decideNamed(p.policies, p.names, matches)
	if len(d.Custom) == 0 {
		return d, nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := p.custom(ctx, req, d); err != nil {
		if errors.Is(err, ErrBadCheckRequest) {
			return failClosed(ReasonBadRequest, err), err
		}
		return failClosed(ReasonError, err), err
	}
	return d, nil
}

// firstMatches evaluates the compiled query and returns, per policy, the
// lowest matching rule index or -1. The evaluation is cancelled when ctx
// ends or after the engine's Timeout: a timer on topdown's cancel rather than a
// context.WithTimeout, which cost three allocations and a goroutine
// handoff on every check.
func (p *Prepared) firstMatches(ctx context.Context, req *Request) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	store := p.engine.store
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("open store transaction: %w", err)
	}
	defer store.Abort(ctx, txn)
	c := topdown.NewCancel()
	t := time.AfterFunc(p.engine.cfg.Timeout, c.Cancel)
	defer t.Stop()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.Cancel)
		defer stop()
	}
	q := topdown.NewQuery(p.query).WithCompiler(p.compiler).WithStore(store).WithTransaction(txn).
		WithInput(ast.NewTerm(p.plan.input(req))).WithCancel(c).WithMetrics(noMetrics)
	var result *ast.Term
	err = q.Iter(ctx, func(qr topdown.QueryResult) error {
		result = qr[ast.Var(resultVar)]
		return nil
	})
	if err != nil {
		return nil, err
	}
	if result == nil {
		return nil, errors.New("query had no result")
	}
	return matchSets(result.Value, len(p.policies))
}

// matchSets reads the query result: the set of matching [policy, rule]
// index pairs. It returns the lowest rule index per policy, or -1.
func matchSets(v ast.Value, n int) ([]int, error) {
	set, ok := v.(ast.Set)
	if !ok {
		return nil, fmt.Errorf("match result is %T, want a set", v)
	}
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	err := set.Iter(func(t *ast.Term) error {
		pi, ri, ok := matchPair(t)
		if !ok || pi < 0 || pi >= n || ri < 0 {
			return fmt.Errorf("match %v is not a [policy, rule] index pair", t)
		}
		if out[pi] < 0 || ri < out[pi] {
			out[pi] = ri
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func matchPair(t *ast.Term) (pi, ri int, ok bool) {
	arr, ok := t.Value.(*ast.Array)
	if !ok || arr.Len() != 2 {
		return 0, 0, false
	}
	a, ok1 := arr.Elem(0).Value.(ast.Number)
	b, ok2 := arr.Elem(1).Value.(ast.Number)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	pi, ok1 = a.Int()
	ri, ok2 = b.Int()
	return pi, ri, ok1 && ok2
}

// custom applies enforced CUSTOM hits: an in-process rego provider is
// evaluated now and its denial wins; an envoyExtAuthzGrpc provider was
// already consulted by its own Envoy filter ahead of Ward's, so it is
// recorded as delegated. An unknown provider denies.
func (p *Prepared) custom(ctx context.Context, req *Request, d *Decision) error {
	seen := map[string]bool{}
	for _, h := range d.Custom {
		if seen[h.Provider] {
			continue
		}
		seen[h.Provider] = true
		prov, ok := p.engine.providers[h.Provider]
		if !ok {
			d.deny(ReasonCustomDeny, h)
			d.Detail = fmt.Sprintf("extension provider %q is not defined in the mesh config", h.Provider)
			return nil
		}
		if prov.external {
			d.Delegated = append(d.Delegated, h.Provider)
			continue
		}
		res, err := prov.eval(ctx, req)
		if err != nil {
			return fmt.Errorf("%w: provider %q: %w", ErrEval, h.Provider, err)
		}
		d.Provider = res
		if !res.Allowed {
			d.deny(ReasonCustomDeny, h)
			return nil
		}
	}
	return nil
}

// Hit is one matched policy rule.
type Hit struct {
	Policy   string `json:"policy"`
	Rule     string `json:"rule"`
	Action   Action `json:"action"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Provider string `json:"provider,omitempty"`
}
