package extauthz

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestServeLeavesNoGoroutines serves checks, stops the server and waits
// (bounded) for the goroutine count to return to where it started.
func TestServeLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newServer(t, Config{}, "", policies)
	c, stop := serveLoopback(t, s)
	for i := 0; i < 20; i++ {
		if _, err := c.Check(context.Background(), check("shop", `{"app":"cart"}`, "", "GET", "/")); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling a bounded wait, not synchronisation
	}
}
