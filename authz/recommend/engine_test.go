package recommend_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/recommend"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
)

const td = "spiffe://cluster.local"

func id(ns, sa string) string { return td + "/ns/" + ns + "/sa/" + sa }

var (
	cart     = id("shop", "cart")
	frontend = id("shop", "frontend")
	legacy   = id("shop", "legacy")
	db       = id("data", "db")
	ingress  = id("istio-system", "ingress")
	t0       = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
)

// checker decides calls with Ward's engine (as `ward authz check` does)
// over the test mesh plus a recommendation.
type checker struct {
	t   *testing.T
	eng *authz.Engine
	ws  map[string]mesh.Labels // destination principal → labels
}

// newChecker loads testdata/mesh.yaml and the recommendation's YAML.
func newChecker(t *testing.T, policies []byte) *checker {
	t.Helper()
	dir := t.TempDir()
	meshYAML, err := os.ReadFile("testdata/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"mesh.yaml": meshYAML, "recommended.yaml": policies} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res, err := file.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rj := range res.Rejected {
		t.Fatalf("rejected: %v\n%s", rj.Err, policies)
	}
	eng, err := authz.NewEngine(res.Snapshot, authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if inv := eng.Invalid(); len(inv) > 0 {
		t.Fatalf("invalid policies: %v\n%s", inv, policies)
	}
	c := &checker{t: t, eng: eng, ws: map[string]mesh.Labels{}}
	for _, ns := range []string{"shop", "data"} {
		for _, w := range res.Snapshot.WorkloadsInNamespace(ns) {
			c.ws[id(ns, w.ServiceAccount)] = w.Labels
		}
	}
	return c
}

func (c *checker) allowed(call recommend.Call) bool {
	c.t.Helper()
	ns, _, _ := principalParts(call.Destination)
	p, err := c.eng.For(context.Background(), ns, c.ws[call.Destination])
	if err != nil {
		c.t.Fatal(err)
	}
	req := &authz.Request{
		Source:      authz.Peer{IP: orDefault(call.SourceAddress, "10.9.0.1"), Port: 40000, Principal: call.Source},
		Destination: authz.Peer{IP: "10.1.0.1", Port: call.Port},
	}
	if call.Protocol != "tcp" {
		req.HTTP = &authz.HTTPRequest{Method: call.Method, Path: call.Path, Host: "x", Headers: map[string]string{}}
	}
	d, err := p.Decide(context.Background(), req)
	if err != nil {
		c.t.Fatalf("decide %+v: %v", call, err)
	}
	return d.Allowed
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func principalParts(p string) (ns, sa string, ok bool) {
	var parts [5]string
	rest := p[len("spiffe://"):]
	for i := 0; i < 4; i++ {
		j := indexByte(rest, '/')
		parts[i], rest = rest[:j], rest[j+1:]
	}
	parts[4] = rest
	return parts[2], parts[4], true
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

func workloads() []recommend.Workload {
	return []recommend.Workload{
		{Namespace: "shop", ServiceAccount: "cart", Labels: map[string]string{"app": "cart", "version": "v1"}},
		{Namespace: "shop", ServiceAccount: "cart", Labels: map[string]string{"app": "cart", "version": "v2"}},
		{Namespace: "shop", ServiceAccount: "frontend", Labels: map[string]string{"app": "frontend"}},
		{Namespace: "shop", ServiceAccount: "legacy", Labels: map[string]string{"app": "legacy"}},
		{Namespace: "data", ServiceAccount: "db", Labels: map[string]string{"app": "db"}},
	}
}

func httpCall(src, dst string, port uint32, method, path string, min int) recommend.Call {
	return recommend.Call{Time: t0.Add(time.Duration(min) * time.Minute), Source: src, Destination: dst, Port: port, Protocol: "http", Method: method, Path: path}
}

// history is a week of shop traffic.
func history() []recommend.Call {
	return []recommend.Call{
		httpCall(ingress, frontend, 9090, "GET", "/", 1),
		httpCall(ingress, frontend, 9090, "GET", "/static/app.js", 2),
		httpCall(frontend, cart, 8080, "GET", "/cart/items/1", 3),
		httpCall(frontend, cart, 8080, "GET", "/cart/items/2", 4),
		httpCall(frontend, cart, 8080, "GET", "/cart/items/3", 5),
		httpCall(frontend, cart, 8080, "POST", "/cart/checkout", 6),
		httpCall(frontend, cart, 8081, "POST", "/shop.Cart/Get", 7),
		httpCall(frontend, cart, 8081, "POST", "/shop.Cart/Put", 8),
		httpCall(frontend, cart, 8081, "POST", "/shop.Cart/List", 9),
		{Time: t0.Add(10 * time.Minute), SourceAddress: "10.9.9.9", Destination: legacy, Port: 8080, Protocol: "http", Method: "GET", Path: "/health"},
		{Time: t0.Add(11 * time.Minute), Source: cart, Destination: db, Port: 5432, Protocol: "tcp"},
		{Time: t0.Add(12 * time.Minute), Source: frontend, Destination: db, Port: 5432, Protocol: "tcp", Denied: true},
		httpCall(frontend, cart, 8080, "GET", "/cart/items/1", 7*24*60),
	}
}

func recommendYAML(t *testing.T, calls []recommend.Call, dryRun bool) []byte {
	t.Helper()
	res := recommend.Recommend(calls, recommend.Config{Selector: recommend.SelectorFrom(workloads())})
	out, err := res.YAML(dryRun)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecommendAllowsEverySeenCall decides every recorded allowed call
// against the enforced recommendation with Ward's engine.
func TestRecommendAllowsEverySeenCall(t *testing.T) {
	calls := history()
	c := newChecker(t, recommendYAML(t, calls, false))
	for _, call := range calls {
		if got := c.allowed(call); got == call.Denied {
			t.Errorf("%+v: allowed = %v, want %v", call, got, !call.Denied)
		}
	}
}

// TestRecommendDeniesUnseen: calls never seen and not covered by a
// collapsed path are denied.
func TestRecommendDeniesUnseen(t *testing.T) {
	c := newChecker(t, recommendYAML(t, history(), false))
	unseen := []recommend.Call{
		httpCall(ingress, cart, 8080, "GET", "/cart/items/1", 0),                                     // other source
		httpCall(frontend, cart, 8080, "DELETE", "/cart/items/1", 0),                                 // other method
		httpCall(frontend, cart, 8080, "GET", "/cart/checkout", 0),                                   // method seen only on another path
		httpCall(frontend, cart, 8080, "GET", "/cart/admin", 0),                                      // /cart/ not collapsed
		httpCall(frontend, cart, 9999, "GET", "/cart/items/1", 0),                                    // other port
		httpCall(frontend, cart, 8080, "POST", "/shop.Cart/Get", 0),                                  // gRPC path on the HTTP port
		httpCall(ingress, frontend, 9090, "GET", "/static/other.js", 0),                              // one path under /static/: exact
		httpCall(frontend, legacy, 8080, "GET", "/health", 0),                                        // mTLS source never seen on legacy
		{SourceAddress: "10.9.9.8", Destination: legacy, Port: 8080, Method: "GET", Path: "/health"}, // other address
		{Source: frontend, Destination: db, Port: 5432, Protocol: "tcp"},                             // seen only denied
		{Source: cart, Destination: db, Port: 5433, Protocol: "tcp"},                                 // other port
	}
	for _, call := range unseen {
		if c.allowed(call) {
			t.Errorf("%+v: allowed, want denied", call)
		}
	}
	collapsed := []recommend.Call{
		httpCall(frontend, cart, 8080, "GET", "/cart/items/42", 0),
		httpCall(frontend, cart, 8081, "POST", "/shop.Cart/Delete", 0),
	}
	for _, call := range collapsed {
		if !c.allowed(call) {
			t.Errorf("%+v: denied, want allowed (collapsed path)", call)
		}
	}
}

// TestRecommendDryRunEnforcesNothing: the dry-run set changes no
// verdict but reports would-be denials.
func TestRecommendDryRunEnforcesNothing(t *testing.T) {
	c := newChecker(t, recommendYAML(t, history(), true))
	if !c.allowed(httpCall(ingress, cart, 8080, "DELETE", "/x", 0)) {
		t.Fatal("dry-run recommendation denied a call")
	}
}

// TestRecommendProperties: on random histories the enforced
// recommendation allows every allowed call, denies calls outside what
// was seen, and is the same for any order of the records.
func TestRecommendProperties(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, seed))
			calls := randomHistory(rnd)
			out := recommendYAML(t, calls, false)
			for i := 0; i < 3; i++ {
				shuffled := append([]recommend.Call(nil), calls...)
				rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if again := recommendYAML(t, shuffled, false); string(again) != string(out) {
					t.Fatalf("output depends on record order:\n%s\n---- vs ----\n%s", out, again)
				}
			}
			c := newChecker(t, out)
			for _, call := range calls {
				if !call.Denied && !c.allowed(call) {
					t.Errorf("recorded allowed call denied: %+v\n%s", call, out)
				}
			}
			for _, call := range unseenProbes(rnd) {
				if c.allowed(call) {
					t.Errorf("unseen call allowed: %+v\n%s", call, out)
				}
			}
		})
	}
}

var (
	sources = []string{cart, frontend, ingress, id("shop", "batch"), id("ops", "prober")}
	dests   = []string{cart, frontend, legacy, db}
	methods = []string{"GET", "POST", "PUT"}
	dirs    = []string{"/api/v1/", "/api/v2/", "/shop.Cart/", "/", "/static/"}
)

func randomHistory(rnd *rand.Rand) []recommend.Call {
	n := 20 + rnd.IntN(80)
	calls := make([]recommend.Call, 0, n)
	for i := 0; i < n; i++ {
		c := recommend.Call{
			Time:        t0.Add(time.Duration(rnd.IntN(7*24*60)) * time.Minute),
			Source:      sources[rnd.IntN(len(sources))],
			Destination: dests[rnd.IntN(len(dests))],
			Port:        uint32(8080 + rnd.IntN(3)),
			Protocol:    "http",
			Method:      methods[rnd.IntN(len(methods))],
			Path:        dirs[rnd.IntN(len(dirs))] + "p" + strconv.Itoa(rnd.IntN(6)),
			Denied:      rnd.IntN(10) == 0,
		}
		switch rnd.IntN(8) {
		case 0:
			c.Protocol, c.Method, c.Path, c.Port = "tcp", "", "", 5432
		case 1:
			c.Source, c.SourceAddress = "", "10.9.0."+strconv.Itoa(rnd.IntN(4))
		}
		calls = append(calls, c)
	}
	return calls
}

// unseenProbes are calls no random history contains and no collapse
// covers: a source, port, method, address or directory never generated.
func unseenProbes(rnd *rand.Rand) []recommend.Call {
	var out []recommend.Call
	for _, d := range dests {
		out = append(out,
			httpCall(id("shop", "stranger"), d, 8080, "GET", "/api/v1/p1", 0),
			httpCall(cart, d, 7777, "GET", "/api/v1/p1", 0),
			httpCall(frontend, d, 8080, "DELETE", "/api/v1/p1", 0),
			httpCall(ingress, d, 8081, "GET", "/never/p1", 0),
			recommend.Call{SourceAddress: "10.8.0.1", Destination: d, Port: 8080, Protocol: "http", Method: "GET", Path: "/api/v1/p1"},
			recommend.Call{Source: sources[rnd.IntN(len(sources))], Destination: d, Port: 5433, Protocol: "tcp"},
		)
	}
	return out
}

// TestRuleEvidence: a source's TCP and HTTP rules each carry the
// evidence of the calls they cover.
func TestRuleEvidence(t *testing.T) {
	res := recommend.Recommend([]recommend.Call{
		{Time: t0, Source: cart, Destination: db, Port: 5432, Protocol: "tcp"},
		{Time: t0.Add(time.Hour), Source: cart, Destination: db, Port: 5432, Protocol: "tcp"},
		httpCall(cart, db, 8080, "GET", "/x", 30),
	}, recommend.Config{})
	rules := res.Policies[0].Rules
	if len(rules) != 2 {
		t.Fatalf("rules %+v", rules)
	}
	for _, r := range rules {
		want := uint64(1)
		if len(r.To) == 1 && len(r.To[0].Methods) == 0 {
			want = 2 // the TCP rule
		}
		if r.Evidence.Calls != want {
			t.Errorf("rule %+v: %d calls, want %d", r.To, r.Evidence.Calls, want)
		}
	}
}

// TestOddPaths: recorded paths Istio cannot hold exactly (wildcards,
// templates) or that look unusual still give valid policies that allow
// the recorded call. (Paths with spaces, control characters or no leading "/" are
// refused by the engine and by Envoy's codec: never recorded allowed.)
func TestOddPaths(t *testing.T) {
	var calls []recommend.Call
	for i, p := range []string{"/ünï/cödé", "/a*b", "/{x}/y", "/x/%41", "/x/y/", "/", "/q;p=1"} {
		calls = append(calls, httpCall(frontend, cart, 8080, "GET", p, i))
	}
	out := recommendYAML(t, calls, false)
	c := newChecker(t, out)
	for _, call := range calls {
		if !c.allowed(call) {
			t.Errorf("%q denied:\n%s", call.Path, out)
		}
	}
}
