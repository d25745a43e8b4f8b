package ca

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// BenchmarkSign is the in-process cost of one workload certificate through
// Sign (template, signature, parse, self-check and, with the default
// file-mode state, the issuance record).
func BenchmarkSign(b *testing.B) {
	c, err := New(Config{StateDir: b.TempDir(), TrustDomain: "example.org"})
	if err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/ns/shop/sa/cart")
	pub := ecKey(b).Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Sign(Params{ID: id, PublicKey: pub}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignParallel signs from GOMAXPROCS goroutines, which contend
// on the issuance log.
func BenchmarkSignParallel(b *testing.B) {
	c, err := New(Config{StateDir: b.TempDir(), TrustDomain: "example.org"})
	if err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/ns/shop/sa/cart")
	pub := ecKey(b).Public()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Sign(Params{ID: id, PublicKey: pub}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
