package als

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkStoreMemory reports what the store holds in memory per record
// (the ring) and per edge (the edge table), as heap in use after a GC
// before and after filling a store with n distinct items. Every string is
// allocated afresh, as when records come from decoded protobuf messages,
// so the figures include the strings a record or edge keeps alive.
// "typical" fields are what the demo and the e2e tests record (~260
// bytes of strings); "worst" has every field at its clip bound. One
// iteration is one fill; the figure does not depend on b.N.
func BenchmarkStoreMemory(b *testing.B) {
	for _, size := range []string{"typical", "worst"} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("records/%s/%d", size, n), func(b *testing.B) {
				for b.Loop() {
					b.ReportMetric(heapPer(n, func() *Store {
						s := NewStore(StoreConfig{MaxRecords: n, MaxEdges: 1})
						for i := range n {
							s.Add(memRecord(size, i, 0))
						}
						return s
					}), "B/record")
				}
			})
			b.Run(fmt.Sprintf("edges/%s/%d", size, n), func(b *testing.B) {
				for b.Loop() {
					b.ReportMetric(heapPer(n, func() *Store {
						s := NewStore(StoreConfig{MaxRecords: 1, MaxEdges: n})
						for i := range n {
							s.Add(memRecord(size, i, i))
						}
						return s
					}), "B/edge")
				}
			})
		}
	}
}

// heapPer is the growth of the live heap over fill, per item.
func heapPer(n int, fill func() *Store) float64 {
	before := liveHeap()
	s := fill()
	after := liveHeap()
	runtime.KeepAlive(s)
	return float64(after-before) / float64(n)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// memRecord is the i-th record of a fill; edge distinguishes edges (all
// records of a records fill share one edge).
func memRecord(size string, i, edge int) Record {
	if size == "worst" {
		f := func(tag string, n int) string { return fmt.Sprintf("%s%d-%s", tag, i, strings.Repeat("x", n))[:n] }
		return Record{
			Time: time.Unix(int64(i), 0), Side: "server", Protocol: "http", Method: "GET",
			Reporter: f("r", maxField), Source: f(fmt.Sprintf("s%d", edge), maxField), Destination: f(fmt.Sprintf("d%d", edge), maxField),
			SourceAddress: f("a", maxField), Cluster: f("c", maxField), Path: f("/p", maxPath), Authority: f("h", maxField),
			Details: f("x", maxField), Policy: f("p", maxField), Rule: f("u", maxField), DecisionID: f("i", maxField),
			ResponseCode: 200, MTLS: true, DurationUS: 1500,
		}
	}
	dst := fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/web-%d", edge)
	return Record{
		Time: time.Unix(int64(i), 0), Side: "server", Protocol: "http", Method: "GET",
		Reporter: dst, Destination: dst, Source: fmt.Sprintf("spiffe://cluster.local/ns/shop/sa/cart-%d", edge),
		SourceAddress: fmt.Sprintf("10.0.%d.%d", i>>8&255, i&255), Cluster: strings.Clone("inbound|8080||"),
		Path: fmt.Sprintf("/api/items/%d", i), Authority: fmt.Sprintf("web.shop.svc.cluster.local:%d", 8080+i%2),
		Details: strings.Clone("via_upstream"), Policy: fmt.Sprintf("shop/allow-web-%d", i%3), Rule: fmt.Sprintf("%d", i%2),
		DecisionID: fmt.Sprintf("%016x", i*2654435761), ResponseCode: 200, MTLS: true, DurationUS: 1500,
	}
}

// TestRingCapacityIsTheBound: a full ring holds exactly MaxRecords slots,
// none unused, whatever the bound.
func TestRingCapacityIsTheBound(t *testing.T) {
	for _, n := range []int{1, 3, 64, 100, 10_000, 12_345} {
		s := NewStore(StoreConfig{MaxRecords: n})
		for i := range n + 5 {
			s.Add(Record{Source: fmt.Sprint(i)})
		}
		if len(s.ring) != n || cap(s.ring) != n {
			t.Errorf("MaxRecords %d: ring len %d cap %d", n, len(s.ring), cap(s.ring))
		}
		if got := s.Records(); len(got) != n || got[0].Source != fmt.Sprint(5) || got[n-1].Source != fmt.Sprint(n+4) {
			t.Errorf("MaxRecords %d: kept %d records, %v … %v", n, len(got), got[0].Source, got[len(got)-1].Source)
		}
	}
}
