package recommend_test

import (
	"math/rand/v2"
	"testing"

	"github.com/wardmesh/ward/authz/recommend"
)

// BenchmarkRecommend100k: a recommendation from 100 000 calls of the
// random history's shape (the per-call cost of a week's records).
func BenchmarkRecommend100k(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 1))
	var calls []recommend.Call
	for len(calls) < 100_000 {
		calls = append(calls, randomHistory(rnd)...)
	}
	calls = calls[:100_000]
	cfg := recommend.Config{Selector: recommend.SelectorFrom(workloads())}
	b.ReportAllocs()
	for b.Loop() {
		if res := recommend.Recommend(calls, cfg); len(res.Policies) == 0 {
			b.Fatal("no policies")
		}
	}
}
