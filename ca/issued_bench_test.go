package ca

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkFileLogRecord is the cost one issuance adds to Sign with the
// default file log (compactions included, amortised).
func BenchmarkFileLogRecord(b *testing.B) {
	l, err := OpenFileLog(filepath.Join(b.TempDir(), "issued.jsonl"), LogConfig{MaxRecords: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	now := time.Now()
	r := IssuedCert{SPIFFEID: "spiffe://example.org/ns/shop/sa/cart", NotBefore: now, NotAfter: now.Add(time.Hour), IssuedAt: now, Signer: "abc", Root: "abc", Method: MethodMTLS}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r.Serial = strconv.Itoa(i)
		if err := l.Record(r); err != nil {
			b.Fatal(err)
		}
	}
}
