package grpcauthz

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/authn/authntest"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry/als"
)

// fixedIdentity authenticates every ALS stream as the protected
// workload (the real server takes it from the certificate).
type fixedIdentity struct{}

func (fixedIdentity) Authenticate(context.Context) (mesh.Identity, error) {
	return mesh.Identity{TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "cart"}, nil
}

// notify signals every write the store makes (once per received
// message).
type notify chan struct{}

func (n notify) Write(p []byte) (int, error) {
	select {
	case n <- struct{}{}:
	default:
	}
	return len(p), nil
}

// tick is a clock advancing 1 ms per reading.
type tick struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tick) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// startALS serves Ward's access-log service on loopback into store.
func startALS(t *testing.T, store *als.Store) string {
	t.Helper()
	g := grpc.NewServer()
	als.New(als.Config{Auth: fixedIdentity{}, Store: store}).Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestProxylessCallRecords: the interceptors, deciding through Ward's
// real ext_authz server, report every RPC through ALSClient to Ward's
// real access-log service, which records who called what, the verdict,
// the deciding policy and rule, and the latency.
func TestProxylessCallRecords(t *testing.T) {
	written := make(notify, 16)
	store := als.NewStore(als.StoreConfig{Sink: written})
	alsc, err := NewALSClient(ALSConfig{Target: startALS(t, store), DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		NodeID: "cart-1.shop", Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer alsc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- alsc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	key := authntest.NewKey(t, "test-key")
	clock := &tick{t: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	a, err := New(Config{Client: extAuthz(t, snapshot(t, policies(authntest.PublicJWKS(t, key))), &syncBuffer{}), Namespace: "shop",
		Labels: map[string]string{"app": "cart"}, Timeout: time.Minute, CallLog: alsc, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	addr := serve(t, p, a)
	web := client(t, p, addr, "spiffe://cluster.local/ns/shop/sa/web")
	other := client(t, p, addr, "spiffe://cluster.local/ns/shop/sa/other")
	if _, err := web.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("web UnaryCall: %v", err)
	}
	if _, err := other.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("other UnaryCall: %v, want PermissionDenied", err)
	}
	if err := stream(context.Background(), web); err != nil {
		t.Fatalf("web stream: %v", err)
	}

	deadline := time.After(10 * time.Second)
	for store.Stats().Records < 3 {
		select {
		case <-written:
		case <-deadline:
			t.Fatalf("records = %+v after 10s, want 3 (client %+v)", store.Stats(), alsc.Stats())
		}
	}
	byCaller := map[string][]als.Record{}
	for _, r := range store.Records() {
		byCaller[r.Source] = append(byCaller[r.Source], r)
	}
	_, port, _ := net.SplitHostPort(addr)
	for _, r := range append(byCaller["spiffe://cluster.local/ns/shop/sa/web"], byCaller["spiffe://cluster.local/ns/shop/sa/other"]...) {
		if r.Side != "server" || r.Destination != "spiffe://cluster.local/ns/shop/sa/cart" || !r.MTLS || r.Method != "POST" ||
			r.Cluster != "inbound|"+port+"||" || r.DurationUS != 1000 || r.DecisionID == "" || r.SourceAddress != "127.0.0.1" ||
			r.Protocol != "grpc" {
			t.Errorf("record %+v", r)
		}
	}
	if got := byCaller["spiffe://cluster.local/ns/shop/sa/web"]; len(got) != 2 || got[0].Denied || got[1].Denied || got[0].Rule == "" || got[0].Policy == "" ||
		got[0].GRPCStatus != "0" {
		t.Errorf("web's records: %+v", got)
	}
	if got := byCaller["spiffe://cluster.local/ns/shop/sa/other"]; len(got) != 1 || !got[0].Denied || got[0].ResponseCode != 403 ||
		got[0].Path != "/grpc.testing.TestService/UnaryCall" || got[0].GRPCStatus != "7" { // PermissionDenied, trailers-only
		t.Errorf("other's records: %+v", got)
	}
	if st := alsc.Stats(); st.Sent != 3 || st.Dropped != 0 {
		t.Errorf("client stats %+v", st)
	}
}

// TestALSClientDropsWhenFull: a full queue drops (and counts) instead of
// blocking the RPC.
func TestALSClientDropsWhenFull(t *testing.T) {
	c, err := NewALSClient(ALSConfig{Target: "127.0.0.1:1", DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		NodeID: "n", Namespace: "shop", QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 5; i++ {
		c.LogCall(nil)
	}
	if st := c.Stats(); st.Dropped != 3 {
		t.Errorf("stats %+v, want 3 dropped", st)
	}
	if _, err := NewALSClient(ALSConfig{Target: "x"}); err == nil {
		t.Error("config without node and namespace accepted")
	}
}
