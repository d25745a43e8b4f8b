package schema

import (
	"fmt"
	"regexp"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Istio's path template operators for AuthorizationPolicy paths.
const (
	matchOne = "{*}"  // exactly one path segment
	matchAny = "{**}" // zero or more segments; last operator only
)

// IsPathTemplate reports whether an AuthorizationPolicy path uses the
// {*} / {**} template operators (and so is matched by Envoy's
// uri_template matcher rather than as a prefix/suffix/exact string).
func IsPathTemplate(p string) bool {
	return strings.Contains(p, matchOne) || strings.Contains(p, matchAny)
}

// PathTemplate checks an AuthorizationPolicy path. Plain paths (with an
// optional leading or trailing "*") are always accepted. A template must
// start with "/", every operator must fill a whole segment ("/a{*}" is
// rejected), "{**}" must be the last operator (literal segments may follow
// it, as in Istio's "/{**}/path/template", but no {*} or {**}), and
// templates cannot mix operators with "*" globs or named variables
// ("{id}", "{id=*}", "{}"), which Envoy supports but Istio does not.
func PathTemplate(p string) error {
	if !IsPathTemplate(p) {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path template %q must start with \"/\"", p)
	}
	anySeen := false
	for _, s := range strings.Split(p[1:], "/") {
		switch {
		case (s == matchOne || s == matchAny) && anySeen:
			return fmt.Errorf("path template %q: %s must be the last operator (no %s or %s after it)", p, matchAny, matchOne, matchAny)
		case s == matchOne:
		case s == matchAny:
			anySeen = true
		case strings.ContainsAny(s, "{}"):
			return fmt.Errorf("path template %q: segment %q must be exactly %s or %s (no named variables or partial segments)", p, s, matchOne, matchAny)
		case strings.Contains(s, "*"):
			return fmt.Errorf("path template %q: cannot mix %s/%s with the glob \"*\" in segment %q", p, matchOne, matchAny, s)
		}
	}
	return nil
}

// maxRegex bounds a regex's length, as Istio does in lieu of RE2's
// program size limit.
const maxRegex = 1024

// Regex checks an RE2 regular expression as Envoy will compile it.
func Regex(re string) error {
	if re == "" {
		return fmt.Errorf("regex must not be empty")
	}
	if len(re) > maxRegex {
		return fmt.Errorf("regex is too large (%d bytes, max %d)", len(re), maxRegex)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("invalid RE2 regex %q: %v", re, err)
	}
	return nil
}

// checkStringMatch validates a StringMatch at p: a regex must compile and
// a prefix (when !emptyPrefixOK) or regex must be non-empty. An empty match
// (no exact/prefix/regex) is rejected when required.
func checkStringMatch(e *errs, p string, m *networking.StringMatch, emptyPrefixOK bool) {
	if m == nil {
		return
	}
	switch t := m.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if t.Prefix == "" && !emptyPrefixOK {
			e.add(p+".prefix", "prefix string match should not be empty")
		}
	case *networking.StringMatch_Regex:
		checkErr(e, p+".regex", Regex(t.Regex))
	}
}
