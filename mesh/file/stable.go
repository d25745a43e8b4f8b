package file

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// observation is what the source last saw of one file.
type observation struct {
	fp      Fingerprint
	removed bool
	since   time.Time // when this version (or the removal) was first seen
	applied bool
}

func sameFingerprint(a, b Fingerprint) bool {
	return a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.SHA256 == b.SHA256
}

// hold decides which files of res may be applied. A file that is new,
// changed or removed since the last observation is applied only once two
// observations at least Quiet apart agree on its size, modification time
// and content hash (and it parsed whole), so a file caught half-written
// by a slow writer never displaces its last applied version, and no
// AuthorizationPolicy or PeerAuthentication disappears because its file
// was momentarily truncated or missing. The first load applies everything
// (nothing is served yet). It returns the files held back and removes
// their objects and rejections from res; mu must be held.
func (s *Source) hold(res *Result, now time.Time) map[string]bool {
	first := s.snap == nil
	held := map[string]bool{}
	present := map[string]bool{}
	for _, f := range res.BrokenFiles {
		present[f] = true
	}
	for name, fp := range res.Files {
		present[name] = true
		if first {
			s.observed[name] = observation{fp: fp, since: now, applied: true}
			continue
		}
		if !s.stable(name, observation{fp: fp}, now) {
			held[name] = true
		}
	}
	// A file left unparsed is held whatever the clock says now; once
	// stable it is parsed and applied at the next reload.
	for _, name := range res.Deferred {
		held[name] = true
	}
	for name, o := range s.observed {
		if present[name] {
			continue
		}
		if !s.stable(name, observation{removed: true}, now) {
			held[name] = true
		} else if o.removed {
			delete(s.observed, name)
		}
	}
	res.dropFiles(held)
	return held
}

// unstable reports, without recording anything, whether a file seen with
// fp would be held back now; such files are not even parsed. It is nil
// before the first load, which applies everything.
func (s *Source) unstable(name string, fp Fingerprint) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.snap == nil {
		return false
	}
	o, ok := s.observed[name]
	if !ok || o.removed || !sameFingerprint(o.fp, fp) {
		return true
	}
	return !o.applied && s.cfg.Clock.Now().Sub(o.since) < s.cfg.Quiet
}

// stable records the observation cur of name and reports whether it may
// be applied now.
func (s *Source) stable(name string, cur observation, now time.Time) bool {
	o, ok := s.observed[name]
	same := ok && o.removed == cur.removed && (cur.removed || sameFingerprint(o.fp, cur.fp))
	switch {
	case !same:
		cur.since = now
		s.observed[name] = cur
		return false
	case o.applied:
		return true
	case now.Sub(o.since) >= s.cfg.Quiet:
		o.applied = true
		s.observed[name] = o
		return true
	}
	return false
}

// dropFiles removes what files produced from r (they are not applied).
func (r *Result) dropFiles(files map[string]bool) {
	if len(files) == 0 {
		return
	}
	objs := r.Objects[:0]
	for _, c := range r.Objects {
		if !files[c.Source.File] {
			objs = append(objs, c)
		}
	}
	r.Objects = objs
	rjs := r.Rejected[:0]
	for _, rj := range r.Rejected {
		if !files[rj.Source.File] {
			rjs = append(rjs, rj)
		}
	}
	r.Rejected = rjs
	if r.Mesh != nil && files[r.MeshSource.File] {
		r.Mesh = nil
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// health tracks whether reloads make progress.
type health struct {
	mu         sync.Mutex
	running    time.Time // start of the reload in flight; zero when idle
	dirtySince time.Time // first change seen and not yet reloaded
}

func (h *health) begin(now time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = now
	return now
}

func (h *health) end(started time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = time.Time{}
	if !h.dirtySince.After(started) {
		h.dirtySince = time.Time{}
	}
}

func (h *health) changed(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dirtySince.IsZero() {
		h.dirtySince = now
	}
}

// Healthy returns an error when reloads are stuck: one has been running
// for longer than StuckAfter, or a change seen that long ago has not been
// reloaded. /readyz reports it.
func (s *Source) Healthy() error {
	now := s.cfg.Clock.Now()
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if r := s.health.running; !r.IsZero() && now.Sub(r) > s.cfg.StuckAfter {
		return fmt.Errorf("config reload of %s running for %s (stuck)", s.cfg.Dir, now.Sub(r).Round(time.Second))
	}
	if d := s.health.dirtySince; !d.IsZero() && now.Sub(d) > s.cfg.StuckAfter {
		return fmt.Errorf("config change in %s seen %s ago not reloaded (stuck)", s.cfg.Dir, now.Sub(d).Round(time.Second))
	}
	return nil
}
