package extauthz

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCheck measures Check without the gRPC transport: request
// conversion, OPA evaluation, response building.
func BenchmarkCheck(b *testing.B) {
	s := newServer(b, Config{Timeout: time.Second}, "", policies)
	req := check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatal(resp, err)
		}
	}
}
