package extauthz

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestServeLeavesNoGoroutines serves checks, stops the server and waits
// (bounded) for the goroutine count to return to where it started.
func TestServeLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newServer(t, Config{}, "", policies)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := authv3.NewAuthorizationClient(conn)
	for i := 0; i < 20; i++ {
		if _, err := c.Check(context.Background(), check("shop", `{"app":"cart"}`, "", "GET", "/")); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel")
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
