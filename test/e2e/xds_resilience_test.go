package e2e

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestXDSRetryOnUnavailable(t *testing.T) {
	rules := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  http:
  - route: [{destination: {host: echo.test.svc.cluster.local}}]
    retries: {attempts: 3, retryOn: unavailable}
`
	m := newXDSMesh(t)
	b, lis := m.listen("flaky")
	// Every odd call fails: without retries half the RPCs would fail.
	b.behave = func(_ context.Context, n int64) error {
		if n%2 == 1 {
			return status.Error(codes.Unavailable, "flaky")
		}
		return nil
	}
	m.apply(echoService(echoHost, "test", "echo") + workloadEntry("flaky", "test", b.port, map[string]string{"app": "echo"}) + rules)
	m.serve(b, lis, "test", map[string]string{"app": "echo"})
	c, _ := m.client("caller", "test", echoHost+":7070")
	for i := range 50 {
		if _, err := call(context.Background(), c); err != nil {
			t.Fatalf("call %d: %v (retry policy not applied)", i, err)
		}
	}
	if got := b.calls.Load(); got < 100 {
		t.Fatalf("backend saw %d calls for 50 RPCs, want ≥100 (every RPC retried once)", got)
	}
}

func TestXDSMaxStreamDurationCutsSlowCall(t *testing.T) {
	rules := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  http:
  - route: [{destination: {host: echo.test.svc.cluster.local}}]
    timeout: 200ms
`
	m := newXDSMesh(t)
	b, lis := m.listen("slow")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.behave = func(ctx context.Context, n int64) error {
		if n == 1 {
			return nil // the readiness probe below
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-release:
			return nil
		}
	}
	m.apply(echoService(echoHost, "test", "echo") + workloadEntry("slow", "test", b.port, map[string]string{"app": "echo"}) + rules)
	m.serve(b, lis, "test", map[string]string{"app": "echo"})
	c, _ := m.client("caller", "test", echoHost+":7070")
	if _, err := call(context.Background(), c); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// call() allows 10 s; only the route's max_stream_duration can end it
	// with DEADLINE_EXCEEDED before the backend is released.
	_, err := call(context.Background(), c)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow call: got %v, want DeadlineExceeded from max_stream_duration", err)
	}
}
