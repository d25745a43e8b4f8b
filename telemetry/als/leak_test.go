package als_test

import (
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestNoGoroutineLeak streams logs, stops the server and waits (bounded)
// for the goroutine count to return to where it started.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		f := startServer(t, 0)
		c := f.client(t, webID)
		for i := 0; i < 5; i++ {
			if code := send(t, c, httpMsg(identifier(webNode), httpEntry("/", 200, "via_upstream", nil))); code != codes.OK {
				t.Fatalf("stream %d: %v", i, code)
			}
		}
		// The subtest's cleanups stop the server and close the client.
	})
	tick := time.NewTicker(10 * time.Millisecond) // polling a bounded wait, not synchronisation
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for runtime.NumGoroutine() > before {
		select {
		case <-deadline:
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		case <-tick.C:
		}
	}
}
