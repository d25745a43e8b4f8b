package schema

import (
	"fmt"
	"strings"

	"github.com/wardmesh/ward/internal/editdist"
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

// editDistance is editdist.OSA between a and b, capped for inputs longer
// than maxSuggestLen (config is untrusted and the table is quadratic).
func editDistance(a, b string) int {
	if len(a) > maxSuggestLen || len(b) > maxSuggestLen {
		if a == b {
			return 0
		}
		return maxSuggestLen
	}
	return editdist.OSA(a, b)
}

// maxSuggestLen bounds the strings editDistance compares, so a hostile
// document with huge keys costs nothing quadratic.
const maxSuggestLen = 64
