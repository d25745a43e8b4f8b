package recommend

import "strings"

// collapse maps each path to the pattern a policy uses for it: the path
// itself, or `<parent>/*` when at least n distinct paths share that
// parent (never the root: `/*` would allow every path). A path Istio
// could not hold exactly (a `*` or `{` in it) becomes the prefix before
// that character, so the pattern still matches it.
func collapse(paths map[string]bool, n int) map[string]string {
	children := map[string]int{}
	for p := range paths {
		if parent, ok := parentOf(p); ok {
			children[parent]++
		}
	}
	out := make(map[string]string, len(paths))
	for p := range paths {
		switch parent, ok := parentOf(p); {
		case ok && children[parent] >= n:
			out[p] = parent + "*"
		default:
			out[p] = exact(p)
		}
	}
	return out
}

// parentOf is p up to and including its last '/', unless that is the
// root or p has no such parent.
func parentOf(p string) (string, bool) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", false
	}
	return p[:i+1], true
}

func exact(p string) string {
	if i := strings.IndexAny(p, "*{"); i >= 0 {
		return p[:i] + "*"
	}
	return p
}
