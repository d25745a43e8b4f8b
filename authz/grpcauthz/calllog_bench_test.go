package grpcauthz

import (
	"net"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// BenchmarkCallEntry is what reporting adds to an RPC on the caller's
// goroutine: building the entry and enqueuing it (sending happens on
// ALSClient.Run's goroutine).
func BenchmarkCallEntry(b *testing.B) {
	c := &call{start: time.Now(), check: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 40000}), Principal: "spiffe://cluster.local/ns/shop/sa/web"},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 8080})},
		Request:     &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Path: "/shop.Cart/Get", Host: "cart.shop", Scheme: "https"}},
	}}, metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"ward_policy": structpb.NewStringValue("ns[shop]-policy[p]")}}}
	q, err := NewALSClient(ALSConfig{Target: "127.0.0.1:1", DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		NodeID: "n", Namespace: "shop", QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	a, err := New(Config{Client: &recorder{}, Namespace: "shop", CallLog: q})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.logCall(c, codes.OK)
	}
}
