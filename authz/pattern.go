package authz

import (
	"regexp"
	"strings"
)

// patternKind is how an Istio string pattern matches.
type patternKind int

const (
	patExact  patternKind = iota // the literal
	patAny                       // "*": any non-empty value
	patSuffix                    // "*<lit>"
	patPrefix                    // "<lit>*"
)

// classify splits an Istio string pattern the way Istio's matcher does
// (StringMatcherWithPrefix in pilot's authz matcher package): "*" is any
// non-empty value; otherwise a leading '*' makes a suffix match, else a
// trailing '*' a prefix match, else the value is exact. Every other '*'
// is literal: "a*b" matches only the string "a*b", and "*a*" is the
// suffix "a*". Istio validation accepts all of these, so Ward must give
// them the same meaning rather than reject them (and deny the workload).
func classify(v string) (patternKind, string) {
	switch {
	case v == "*":
		return patAny, ""
	case strings.HasPrefix(v, "*"):
		return patSuffix, v[1:]
	case strings.HasSuffix(v, "*"):
		return patPrefix, v[:len(v)-1]
	}
	return patExact, v
}

// isGlob reports whether a namespace pattern needs glob matching: Istio
// renders source.namespace patterns as a regex in which every '*' is a
// wildcard ("a*b" matches "a-to-b"), unlike the other string fields.
func isGlob(v string) bool {
	if v == "*" {
		return false
	}
	if k, lit := classify(v); k != patExact && !strings.Contains(lit, "*") {
		return false // a plain prefix or suffix
	}
	return strings.Contains(v, "*")
}

// globRegex renders a namespace glob as a regex body: literal parts
// quoted, each '*' replaced by any (the caller's "any run of characters",
// bounded to one SPIFFE path segment where that matters).
func globRegex(v, any string) string {
	parts := strings.Split(v, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return strings.Join(parts, any)
}

// trustDomain returns the trust domain of a principal (with or without
// the spiffe:// scheme): the text before its first '/', if any.
func trustDomain(p string) (string, bool) {
	td, _, ok := strings.Cut(strings.TrimPrefix(p, "spiffe://"), "/")
	if !ok || td == "" {
		return "", false
	}
	return td, true
}
