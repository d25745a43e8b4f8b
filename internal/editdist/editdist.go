// Package editdist owns the string distance Ward's "did you mean"
// suggestions rank by: config field and enum names (mesh/schema) and
// proxy IDs (ward proxy-status).
package editdist

// OSA is the Damerau–Levenshtein distance by optimal string alignment
// (insertions, deletions, substitutions and adjacent transpositions, each
// costing 1) between a and b, by bytes. It takes O(len(a)·len(b)) time, so
// callers bound the lengths of untrusted inputs.
func OSA(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
