package xds

import (
	"sync"
	"time"
)

// throttle bounds how many state-of-the-world responses are in flight
// (sent but not yet ACKed or NACKed) across all proxies, like Istio's push
// throttle. Each in-flight response holds an encoded copy in gRPC's send
// buffers until the proxy reads it; without a bound, a push to 2,000
// proxies holds 2,000 of them at once. A slot is released by the proxy's
// answer or its stream closing; a proxy that never answers only delays
// others by wait.
type throttle struct {
	slots chan struct{}
	wait  time.Duration

	mu   sync.Mutex
	held map[throttleKey]bool
}

type throttleKey struct {
	stream int64
	url    string
}

func newThrottle(n int, wait time.Duration) *throttle {
	return &throttle{slots: make(chan struct{}, n), wait: wait, held: map[throttleKey]bool{}}
}

// acquire takes a slot for a response on stream/url, waiting at most t.wait.
func (t *throttle) acquire(stream int64, url string) {
	k := throttleKey{stream, url}
	t.mu.Lock()
	if t.held[k] {
		t.mu.Unlock()
		return // the previous response of this type is still unanswered: keep its slot
	}
	t.mu.Unlock()
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	select {
	case t.slots <- struct{}{}:
		t.mu.Lock()
		t.held[k] = true
		t.mu.Unlock()
	case <-timer.C:
	}
}

// release frees the slot of stream/url, if held.
func (t *throttle) release(stream int64, url string) {
	k := throttleKey{stream, url}
	t.mu.Lock()
	held := t.held[k]
	delete(t.held, k)
	t.mu.Unlock()
	if held {
		<-t.slots
	}
}

// closeStream frees every slot of a stream.
func (t *throttle) closeStream(stream int64) {
	t.mu.Lock()
	var n int
	for k := range t.held {
		if k.stream == stream {
			delete(t.held, k)
			n++
		}
	}
	t.mu.Unlock()
	for range n {
		<-t.slots
	}
}
