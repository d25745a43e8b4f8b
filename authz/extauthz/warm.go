package extauthz

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// Preparing a new snapshot's policies before they decide.
//
// An engine specialises each workload's policies by partial evaluation
// the first time a check asks for that workload's set of applicable
// policies: 8 ms at 10 policies, 37 ms at 100, half a second at 1,000 on a
// loaded machine (docs/benchmarks.md). Envoy's ext_authz filter gives a
// check 200 ms and fails closed, so paying that on a check after a policy
// change would deny the first requests to a workload for no reason.
//
// So a new snapshot is compiled at once but staged: in the background the
// server prepares every workload it knows of — the snapshot's workloads
// (WorkloadEntries, pods) and the workload label sets recent checks named
// — at most Config.PrepareConcurrency at a time, then swaps the engine in.
// Until then a check is decided by the newest engine that is ready for its
// workload: the staged one once that workload is prepared, otherwise the
// previous one if it had the workload prepared, otherwise the staged one,
// preparing inline (a workload neither engine knew; counted). A check's
// policies, RequestAuthentications and port protocols come from one
// snapshot's engine, never a mix.
//
// Keeping the previous engine's decisions while the new one prepares is
// the trade-off Istio makes with Envoy: a sidecar enforces its previous
// RBAC until it has received and ACKed the new listener. It is bounded:
// Config.PreviousPolicyBound after the previous engine first became stale
// the staged engine is swapped in whether or not it is ready (a stream of
// snapshots cannot extend it), and a newer snapshot cancels the
// preparation of an older staged one.

// maxSeen bounds the label sets remembered from checks.
const maxSeen = 4096

// warmHooks lets tests watch and hold the background preparation.
type warmHooks struct {
	prepare  func(w authz.Workload) // before each workload is prepared
	promoted func(e *authz.Engine)  // after an engine starts deciding
}

// stage is one staged engine and its background preparation.
type stage struct {
	engine   *authz.Engine
	cancel   context.CancelFunc
	timer    *time.Timer
	promoted bool
}

// warmer holds the staging state of a Server.
type warmer struct {
	mu         sync.Mutex
	current    *stage
	staleSince time.Time // when the serving engine was first superseded
	staged     atomic.Pointer[authz.Engine]
	wg         sync.WaitGroup
	seen       sync.Map // workload key → authz.Workload
	nseen      atomic.Int64
	hooks      warmHooks
}

// stageEngine starts preparing e in the background (when a bound is set)
// and arranges for it to start deciding: at once when nothing decides yet
// or no bound is set, else when its preparation ends or the bound expires.
func (s *Server) stageEngine(e *authz.Engine) {
	w := &s.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.current; c != nil {
		s.stopStage(c) // a newer snapshot supersedes it
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &stage{engine: e, cancel: cancel}
	w.current = st
	if s.engine.Load() == nil || s.cfg.PreviousPolicyBound <= 0 {
		s.promoteLocked(st)
	} else {
		now := s.cfg.Clock.Now()
		if w.staleSince.IsZero() {
			w.staleSince = now
		}
		w.staged.Store(e)
		st.timer = time.AfterFunc(w.staleSince.Add(s.cfg.PreviousPolicyBound).Sub(now), func() { s.promote(st, "bound") })
	}
	if s.cfg.PreviousPolicyBound <= 0 {
		return // no background preparation: each workload prepares on its first check
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		s.prepareAll(ctx, st)
	}()
}

func (s *Server) stopStage(st *stage) {
	st.cancel()
	if st.timer != nil {
		st.timer.Stop()
	}
}

// promote makes st's engine decide, unless a newer snapshot superseded it.
func (s *Server) promote(st *stage, why string) {
	s.warm.mu.Lock()
	defer s.warm.mu.Unlock()
	if s.warm.current != st || st.promoted {
		return
	}
	s.promoteLocked(st)
	if why == "bound" {
		s.cfg.Log.Warn("ext_authz policies swapped in before every workload was prepared: the previous policies' bound expired",
			"version", st.engine.Snapshot().Version(), "bound", s.cfg.PreviousPolicyBound)
	}
}

func (s *Server) promoteLocked(st *stage) {
	st.promoted = true
	if st.timer != nil {
		st.timer.Stop()
	}
	s.engine.Store(st.engine)
	s.warm.staged.Store(nil)
	s.warm.staleSince = time.Time{}
	if h := s.warm.hooks.promoted; h != nil {
		h(st.engine)
	}
}

// prepareAll prepares every known workload on st's engine, at most
// PrepareConcurrency at a time, and promotes it when done. A preparation
// already begun finishes (the engine shares it with checks); the next
// does not start once ctx ends.
func (s *Server) prepareAll(ctx context.Context, st *stage) {
	start := s.cfg.Clock.Now()
	work := make(chan authz.Workload)
	var wg sync.WaitGroup
	for range s.cfg.PrepareConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wl := range work {
				if h := s.warm.hooks.prepare; h != nil {
					h(wl)
				}
				if _, fresh := st.engine.Ready(wl.Namespace, wl.Labels); fresh {
					s.metrics.prepared.Inc() // its policy set was prepared for another workload
					continue
				}
				if _, err := st.engine.For(ctx, wl.Namespace, wl.Labels); err != nil {
					s.cfg.Log.Warn("ext_authz: prepare workload", "workload", wl.Namespace+"/"+wl.Name, "error", err)
					continue
				}
				s.metrics.prepared.Inc()
			}
		}()
	}
feed:
	for _, wl := range s.known(st.engine.Snapshot()) {
		select {
		case work <- wl:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.metrics.prepare.Observe(s.cfg.Clock.Now().Sub(start).Seconds())
	s.promote(st, "ready")
}

// known lists the workloads to prepare for snap: its workloads, then the
// label sets checks named, each shape once.
func (s *Server) known(snap *mesh.Snapshot) []authz.Workload {
	var out []authz.Workload
	keys := map[string]bool{}
	add := func(w authz.Workload) {
		if k := workloadKey(w); !keys[k] {
			keys[k] = true
			out = append(out, w)
		}
	}
	for _, w := range snap.Workloads() {
		if w.Namespace != "" {
			add(authz.Workload{Namespace: w.Namespace, Name: w.Name, Labels: w.Labels})
		}
	}
	s.warm.seen.Range(func(_, v any) bool {
		add(v.(authz.Workload))
		return true
	})
	return out
}

// remember records a workload shape a check named, so the next snapshot
// prepares it; at most maxSeen shapes are kept.
func (s *Server) remember(w authz.Workload) {
	k := workloadKey(w)
	if _, ok := s.warm.seen.Load(k); ok || s.warm.nseen.Load() >= maxSeen {
		return
	}
	if _, loaded := s.warm.seen.LoadOrStore(k, w); !loaded {
		s.warm.nseen.Add(1)
	}
}

// pick returns the engine that decides a check for w and, when it is
// ready, its prepared evaluation (nil: the caller prepares inline on the
// returned engine). See the comment at the top of this file.
func (s *Server) pick(w authz.Workload) (*authz.Engine, *authz.Prepared) {
	cur := s.engine.Load()
	if staged := s.warm.staged.Load(); staged != nil {
		if p, ok := staged.Ready(w.Namespace, w.Labels); ok {
			return staged, p
		}
		if cur != nil {
			if p, ok := cur.Ready(w.Namespace, w.Labels); ok {
				s.metrics.previous.Inc()
				s.remember(w)
				return cur, p
			}
		}
		s.remember(w)
		return staged, nil
	}
	if cur == nil {
		return nil, nil
	}
	if p, ok := cur.Ready(w.Namespace, w.Labels); ok {
		return cur, p
	}
	s.remember(w)
	return cur, nil
}

// Close stops any background preparation and waits for it. Serve calls it
// when its context ends.
func (s *Server) Close() {
	s.warm.mu.Lock()
	if c := s.warm.current; c != nil {
		s.stopStage(c)
	}
	s.warm.mu.Unlock()
	s.warm.wg.Wait()
}
