package schema

import (
	"fmt"
	"strings"
)

// suggest returns the candidate a misspelt s most likely meant, or "":
// the closest by edit distance, compared case-insensitively, when it is at
// most 1 edit away for short words and 2 for words of five letters or more.
// An exact match is not a suggestion.
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			return ""
		}
		d := editDistance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > maxEdits(s) {
		return ""
	}
	return best
}

func maxEdits(s string) int {
	if len(s) >= 5 {
		return 2
	}
	return 1
}

// didYouMean renders a suggestion as ` (did you mean "x"?)`, or "".
func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}

// meant renders a suggestion as `did you mean "x"? `, or "", to lead a
// longer parenthesis.
func meant(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf("did you mean %q? ", m)
	}
	return ""
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment: insertions, deletions, substitutions and adjacent
// transpositions) between a and b, by bytes. Inputs are field names and
// enum values, so the quadratic table is small; callers bound the length.
func editDistance(a, b string) int {
	if len(a) > maxSuggestLen || len(b) > maxSuggestLen {
		if a == b {
			return 0
		}
		return maxSuggestLen
	}
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

// maxSuggestLen bounds the strings editDistance compares, so a hostile
// document with huge keys costs nothing quadratic.
const maxSuggestLen = 64
