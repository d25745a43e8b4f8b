package extauthz

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardmesh/ward/authz"
)

// warmPolicies allows method on app=cart and app=api in shop; with
// billing, it also declares a WorkloadEntry app=billing (no check has
// named it) and allows method on it.
func warmPolicies(method string, billing bool) string {
	s := ""
	apps := []string{"cart", "api"}
	if billing {
		apps = append(apps, "billing")
		s = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: billing-vm, namespace: shop}\nspec: {address: 10.0.0.9, labels: {app: billing}}\n---\n"
	}
	for i, app := range apps {
		if i > 0 {
			s += "---\n"
		}
		s += fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-%s, namespace: shop}\nspec:\n  selector: {matchLabels: {app: %s}}\n  rules: [{to: [{operation: {methods: [%q]}}]}]\n", app, app, method)
	}
	return s
}

// warmServer is a server whose background preparation the test can hold
// (holdNext) and whose swaps it watches (promoted).
type warmServer struct {
	*Server
	gate     atomic.Pointer[chan struct{}] // set: preparation waits for it to close
	promoted chan *authz.Engine
}

func newWarmServer(t *testing.T, bound time.Duration) *warmServer {
	ws := &warmServer{Server: New(Config{Timeout: time.Minute, PreviousPolicyBound: bound}), promoted: make(chan *authz.Engine, 8)}
	ws.warm.hooks.prepare = func(authz.Workload) {
		if g := ws.gate.Load(); g != nil {
			<-*g
		}
	}
	ws.warm.hooks.promoted = func(e *authz.Engine) { ws.promoted <- e }
	t.Cleanup(ws.Close)
	return ws
}

// holdNext holds background preparation until the returned func runs.
func (ws *warmServer) holdNext(t *testing.T) func() {
	g := make(chan struct{})
	ws.gate.Store(&g)
	var once sync.Once
	release := func() { once.Do(func() { close(g) }) }
	t.Cleanup(release) // before Close (cleanups run last first)
	return release
}

func (ws *warmServer) update(t *testing.T, pols string) {
	t.Helper()
	if err := ws.Update(snapshot(t, "", pols)); err != nil {
		t.Fatal(err)
	}
}

// waitPromoted waits (bounded) for an engine to start deciding.
func (ws *warmServer) waitPromoted(t *testing.T) *authz.Engine {
	t.Helper()
	select {
	case e := <-ws.promoted:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no engine swapped in within 30s")
		return nil
	}
}

// envoyCheck checks with Envoy's ext_authz timeout (200 ms as Ward emits
// it) and reports whether it was allowed and the denial's reason.
func envoyCheck(s *Server, req *authv3.CheckRequest) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	resp, err := s.Check(ctx, req)
	if err != nil {
		return false, err.Error()
	}
	return resp.GetStatus().GetCode() == 0, reasonOf(resp)
}

// pair checks GET and POST to cart: "get" when only GET is allowed,
// "post" when only POST is, anything else is a failure.
func pair(s *Server) string {
	get, r1 := envoyCheck(s, check("shop", `{"app":"cart"}`, "", "GET", "/x"))
	post, r2 := envoyCheck(s, check("shop", `{"app":"cart"}`, "", "POST", "/x"))
	switch {
	case get && !post:
		return "get"
	case post && !get:
		return "post"
	}
	return fmt.Sprintf("get=%v (%s) post=%v (%s)", get, r1, post, r2)
}

// TestPolicyChangeUnderChecks changes the policies under a steady stream
// of checks while the new snapshot's preparation is held: every check is
// decided by the previous policies without preparing anything (none
// fails closed at Envoy's timeout), and once the preparation is released
// the stream switches to the new policies, once and for good. A workload
// only the new snapshot declares is prepared before it decides.
func TestPolicyChangeUnderChecks(t *testing.T) {
	ws := newWarmServer(t, time.Hour)
	ws.update(t, warmPolicies("GET", false))
	ws.waitPromoted(t) // the first snapshot decides at once
	if got := pair(ws.Server); got != "get" {
		t.Fatalf("first snapshot: %s", got)
	}
	if ok, _ := envoyCheck(ws.Server, check("shop", `{"app":"api"}`, "", "GET", "/")); !ok {
		t.Fatal("api GET denied by the first snapshot")
	}
	inline := counter(ws.metrics.inline)

	release := ws.holdNext(t)
	ws.update(t, warmPolicies("POST", true))
	const held = 50
	results := make(chan string, 1024)
	stop := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			select {
			case results <- pair(ws.Server):
			case <-stop:
				return
			}
		}
	}()
	next := func() string {
		select {
		case r := <-results:
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("the check stream stalled for 30s")
			return ""
		}
	}
	for range held {
		if r := next(); r != "get" {
			t.Fatalf("while the new policies prepare, the previous ones decide; got %s", r)
		}
	}
	release()
	e := ws.waitPromoted(t)
	for next() != "post" {
	}
	for range 20 {
		if r := next(); r != "post" {
			t.Fatalf("after the swap to %s: %s", e.Snapshot().Version(), r)
		}
	}
	close(stop)
	<-streamDone
	if ok, reason := envoyCheck(ws.Server, check("shop", `{"app":"billing"}`, "", "POST", "/")); !ok {
		t.Fatalf("billing POST denied: %s", reason)
	}
	if ok, _ := envoyCheck(ws.Server, check("shop", `{"app":"api"}`, "", "GET", "/")); ok {
		t.Fatal("api GET allowed after the swap")
	}
	if got := counter(ws.metrics.inline); got != inline {
		t.Errorf("%v checks prepared inline after the policy change, want 0", got-inline)
	}
	if got := counter(ws.metrics.previous); got < 2*held {
		t.Errorf("previous-policy checks = %v, want >= %d", got, 2*held)
	}
	if got := counter(ws.metrics.prepared); got < 3 {
		t.Errorf("prepared workloads = %v, want >= 3 (cart, api, billing)", got)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestPreviousPolicyBound: when the new snapshot's preparation does not
// finish within the bound, it is swapped in anyway; a check then prepares
// inline and is decided by the new policies.
func TestPreviousPolicyBound(t *testing.T) {
	ws := newWarmServer(t, time.Nanosecond)
	ws.update(t, warmPolicies("GET", false))
	ws.waitPromoted(t)
	if got := pair(ws.Server); got != "get" {
		t.Fatalf("first snapshot: %s", got)
	}
	release := ws.holdNext(t)
	defer release()
	ws.update(t, warmPolicies("POST", false))
	ws.waitPromoted(t) // by the bound: the preparation is still held
	inline := counter(ws.metrics.inline)
	if got := pair(ws.Server); got != "post" {
		t.Fatalf("after the bound: %s", got)
	}
	if got := counter(ws.metrics.inline); got != inline+1 {
		t.Errorf("inline preparations = %v, want %v (the pair's first check)", got, inline+1)
	}
}

// TestNewerSnapshotSupersedesStaged: a snapshot staged while an older one
// prepares cancels it; only the newest is swapped in.
func TestNewerSnapshotSupersedesStaged(t *testing.T) {
	ws := newWarmServer(t, time.Hour)
	ws.update(t, warmPolicies("GET", false))
	ws.waitPromoted(t)
	if got := pair(ws.Server); got != "get" {
		t.Fatalf("first snapshot: %s", got)
	}
	release := ws.holdNext(t)
	ws.update(t, warmPolicies("PUT", false))
	ws.update(t, warmPolicies("POST", false))
	release()
	e := ws.waitPromoted(t)
	if got := e.Snapshot(); got != ws.engine.Load().Snapshot() {
		t.Fatalf("swapped in %s, serving %s", got.Version(), ws.engine.Load().Snapshot().Version())
	}
	if got := pair(ws.Server); got != "post" {
		t.Fatalf("after the swap: %s (the PUT snapshot was superseded)", got)
	}
	ws.Close()
	select {
	case e := <-ws.promoted:
		t.Fatalf("a second swap, to %s", e.Snapshot().Version())
	default:
	}
}
