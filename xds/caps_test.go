package xds_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/xds"
)

// counter returns the value of metric name with label value lv ("" for
// an unlabelled counter).
func counter(t *testing.T, reg *prometheus.Registry, name, lv string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lv == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == lv) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func sidecar(i int) *core.Node {
	return &core.Node{Id: "sidecar~10.7.0." + string(rune('1'+i)) + "~app.bookinfo~bookinfo.svc.cluster.local"}
}

// Stream caps: from one source, streams over MaxStreamsPerSource are
// refused with ResourceExhausted and counted; closing one frees a slot.
func TestAttackStreamCapPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(t, xds.Config{Registry: reg, Limits: xds.Limits{MaxStreamsPerSource: 3}})
	cc := dial(t, serve(t, s, nil), nil)
	cancels := make([]context.CancelFunc, 0, 3)
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		if _, err := listenersCtx(t, ctx, cc, sidecar(i)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	_, err := listeners(t, cc, sidecar(3))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("4th stream from one source: %v; want ResourceExhausted", err)
	}
	if n := counter(t, reg, "ward_xds_rejected_streams_total", "max_streams_per_source"); n != 1 {
		t.Fatalf("rejected streams metric = %v, want 1", n)
	}
	cancels[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := listeners(t, cc, sidecar(4))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's slot was not freed within 10s: %v", err)
		}
	}
	for _, c := range cancels {
		c()
	}
}

// Connection caps: a connection over MaxConnectionsPerSource is closed at
// accept (the RPC fails) and counted.
func TestAttackConnectionCapPerSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(t, xds.Config{Registry: reg})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s, nil, s.LimitListener(lis, xds.ConnLimits{MaxConnectionsPerSource: 2}))
	addr := lis.Addr().String()
	for i := range 2 {
		if _, err := listeners(t, dial(t, addr, nil), sidecar(i)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := dial(t, addr, nil)
	if _, err := listenersCtx(t, ctx, cc, sidecar(2), grpc.WaitForReady(false)); status.Code(err) != codes.Unavailable {
		t.Fatalf("3rd connection from one source: %v; want Unavailable", err)
	}
	if n := counter(t, reg, "ward_grpc_rejected_connections_total", "max_connections_per_source"); n < 1 {
		t.Fatalf("rejected connections metric = %v, want ≥ 1", n)
	}
}

// A 3 MiB node id is refused with a clear error and logged in a few
// hundred bytes; a long but allowed one is logged truncated and counted.
func TestAttackHugeNodeIDLogBounded(t *testing.T) {
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	s := newServer(t, xds.Config{Registry: reg, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	cc := dial(t, serve(t, s, nil), nil, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(8<<20)))
	huge := strings.Repeat("x", 3<<20)
	_, err := listeners(t, cc, &core.Node{Id: huge})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id is 3145728 bytes") {
		t.Fatalf("3 MiB node id: %v; want InvalidArgument naming the size", err)
	}
	big, _ := structpb.NewStruct(map[string]any{"BLOB": strings.Repeat("y", 1<<20)})
	_, err = listeners(t, cc, &core.Node{Id: "sidecar~10.0.0.1~a.bookinfo~bookinfo.svc.cluster.local", Metadata: big})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node (id and metadata)") {
		t.Fatalf("1 MiB metadata: %v; want InvalidArgument", err)
	}
	long := "sidecar~10.0.0.2~" + strings.Repeat("a", 900) + ".bookinfo~bookinfo.svc.cluster.local"
	if _, err := listeners(t, cc, &core.Node{Id: long}); err != nil {
		t.Fatalf("900-byte node id: %v", err)
	}
	if n := logs.Len(); n > 16<<10 {
		t.Fatalf("log output is %d bytes after a 3 MiB node id; want it small", n)
	}
	if !strings.Contains(logs.String(), "bytes)") {
		t.Fatalf("long node id not logged truncated:\n%s", logs.String())
	}
	if n := counter(t, reg, "ward_xds_log_truncations_total", ""); n < 1 {
		t.Fatalf("truncations metric = %v", n)
	}
}

// Concurrent streams per connection (ward serve's
// --max-concurrent-streams, grpc.MaxConcurrentStreams): a third stream on
// a connection allowed two is not served while both are open, and is once
// one closes.
func TestAttackConcurrentStreamsPerConnection(t *testing.T) {
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, nil, grpc.MaxConcurrentStreams(2)), nil)
	var cancels []context.CancelFunc
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		if _, err := listenersCtx(t, ctx, cc, sidecar(i)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := listenersCtx(t, ctx, cc, sidecar(2)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("3rd concurrent stream on one connection: %v; want it held back (DeadlineExceeded)", err)
	}
	cancels[0]()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := listenersCtx(t, ctx2, cc, sidecar(3)); err != nil {
		t.Fatalf("stream after one closed: %v", err)
	}
	cancels[1]()
}
