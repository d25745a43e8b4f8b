package xds

import (
	"sync"
	"time"
)

// throttle is per-stream back-pressure on state-of-the-world responses:
// each stream may have at most max responses sent but not yet answered
// (ACKed or NACKed). A response over that bound waits for the same
// stream's answers, at most wait, then goes anyway; the wait blocks only
// that stream's own send loop, so a proxy that never answers delays only
// itself. (A global pool, as Ward had before, let 30 silent streams hold
// every slot and stretch every other proxy's sync to seconds.)
//
// The SotW protocol already gives a stream at most one unanswered response
// per type (go-control-plane answers a type again only after the next
// request of that type), so memory held for one stream is bounded by its
// types; the stream caps (Limits, LimitListener, MaxConcurrentStreams)
// bound the number of streams.
type throttle struct {
	max  int
	wait time.Duration
	// waited is called when a response had to wait (metrics).
	waited func()

	mu      sync.Mutex
	streams map[int64]*streamSlots
}

type streamSlots struct {
	held  map[string]bool // type URL → an unanswered response holds a slot
	freed chan struct{}   // closed (and replaced) when a slot is released
}

func newThrottle(max int, wait time.Duration, waited func()) *throttle {
	return &throttle{max: max, wait: wait, waited: waited, streams: map[int64]*streamSlots{}}
}

func (t *throttle) slots(stream int64) *streamSlots {
	ss := t.streams[stream]
	if ss == nil {
		ss = &streamSlots{held: map[string]bool{}, freed: make(chan struct{})}
		t.streams[stream] = ss
	}
	return ss
}

// acquire takes a slot of stream for a response of type url, waiting at
// most t.wait for the stream to answer an earlier response.
func (t *throttle) acquire(stream int64, url string) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		t.mu.Lock()
		ss := t.slots(stream)
		if ss.held[url] || len(ss.held) < t.max {
			ss.held[url] = true // a type's next response reuses its slot
			t.mu.Unlock()
			return
		}
		freed := ss.freed
		t.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(t.wait)
			t.waited()
		}
		select {
		case <-freed:
		case <-timer.C:
			return // go without a slot: the stream has waited long enough for itself
		}
	}
}

// release frees the slot of stream/url, if held.
func (t *throttle) release(stream int64, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss := t.streams[stream]
	if ss == nil || !ss.held[url] {
		return
	}
	delete(ss.held, url)
	close(ss.freed)
	ss.freed = make(chan struct{})
}

// closeStream forgets a stream.
func (t *throttle) closeStream(stream int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.streams, stream)
}
