package xds

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/wardmesh/ward/mesh"
)

// fakeClock fires timers only when advanced.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves time forward and runs due timers in order.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	rest := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			due = append(due, t)
		} else if !t.stopped {
			rest = append(rest, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

func TestDebounceQuietAndMaxWait(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	var pushed []string
	d := debouncer{clock: clock, quiet: 100 * time.Millisecond, max: time.Second, fire: func(s *mesh.Snapshot, _ time.Time) {
		pushed = append(pushed, s.Version())
	}}
	snaps := make([]*mesh.Snapshot, 20)
	for i := range snaps {
		snaps[i] = snapshotOf(serviceEntry("a.test.svc.cluster.local", uint32(80+i), "10.0.0.1"))
	}
	d.add(snaps[0])
	clock.advance(50 * time.Millisecond)
	d.add(snaps[1])
	clock.advance(99 * time.Millisecond)
	if len(pushed) != 0 {
		t.Fatalf("pushed before the quiet period ended: %v", pushed)
	}
	clock.advance(time.Millisecond)
	if len(pushed) != 1 || pushed[0] != snaps[1].Version() {
		t.Fatalf("after quiet period: pushed %v, want only the latest snapshot", pushed)
	}
	// A steady stream of updates every 60 ms is still pushed within 1 s.
	pushed = nil
	for i := 2; i < 20; i++ {
		d.add(snaps[i])
		clock.advance(60 * time.Millisecond)
	}
	if len(pushed) == 0 {
		t.Fatal("max wait did not force a push during a stream of updates")
	}
}
