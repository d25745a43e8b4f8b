package sds

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestNoGoroutineLeak: after streams close and Serve returns, the server
// leaves no goroutines behind.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newServer(t)
	mustOK(t, s.SetIdentity([]byte("chain"), []byte("key")))
	lis, err := ListenUnix(filepath.Join(t.TempDir(), "sds.sock"))
	mustOK(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	mustOK(t, err)
	sctx, scancel := context.WithCancel(ctx)
	for range 3 {
		st, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(sctx)
		mustOK(t, err)
		mustOK(t, st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{SecretDefault}}))
		recv(t, st.Recv)
	}
	scancel()
	cc.Close()
	cancel()
	mustOK(t, <-done)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left (had %d):\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval of a bounded wait
	}
}
