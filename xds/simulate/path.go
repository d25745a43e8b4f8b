package simulate

import (
	"strings"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// PathOptions are the HTTP connection manager's path settings.
type PathOptions struct {
	Normalize      bool // normalize_path (RFC 3986)
	MergeSlashes   bool // merge_slashes
	EscapedSlashes hcm.HttpConnectionManager_PathWithEscapedSlashesAction
}

// PathAction is what the HCM does with a request path.
type PathAction int

// Path actions.
const (
	PathForward  PathAction = iota // continue with Path
	PathReject                     // 400
	PathRedirect                   // 307 to Path (UNESCAPE_AND_REDIRECT)
)

// NormalizePath transforms a request :path as Envoy's HTTP connection
// manager does before any filter or route sees it: a path must start
// with "/" (except "*" for OPTIONS and CONNECT without path) and hold no
// fragment, control character or space; then the escaped-slashes action
// (%2F and %5C) runs, then normalize_path (the Chromium path
// canonicaliser Envoy embeds: "\" becomes "/", %XX of ALPHA DIGIT - _ ~
// and "." decoded, other escapes kept as sent, characters that must be
// escaped escaped, %00 rejected, dot segments removed), then slash
// merging. The query is kept as sent.
func NormalizePath(raw, method string, o PathOptions) (string, PathAction) {
	if method == "CONNECT" || (raw == "*" && method == "OPTIONS") {
		return raw, PathForward
	}
	if !strings.HasPrefix(raw, "/") || strings.ContainsAny(raw, "#") || hasControl(raw) {
		return raw, PathReject
	}
	path, query, hasQuery := strings.Cut(raw, "?")
	path, action := escapedSlashes(path, o.EscapedSlashes)
	if action == PathReject {
		return raw, PathReject
	}
	if o.Normalize {
		c, ok := canonicalPath(path)
		if !ok {
			return raw, PathReject
		}
		path = removeDotSegments(c)
	}
	if o.MergeSlashes {
		path = mergeSlashes(path)
	}
	if hasQuery {
		path += "?" + query
	}
	return path, action
}

// escapedSlashes applies path_with_escaped_slashes_action to %2F and %5C.
func escapedSlashes(path string, a hcm.HttpConnectionManager_PathWithEscapedSlashesAction) (string, PathAction) {
	switch a {
	case hcm.HttpConnectionManager_REJECT_REQUEST:
		if hasEscapedSlash(path) {
			return path, PathReject
		}
	case hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		return unescapeSlashes(path), PathForward
	case hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		if hasEscapedSlash(path) {
			return unescapeSlashes(path), PathRedirect
		}
	}
	return path, PathForward
}

// hasControl reports a control character, space or DEL, which Envoy's
// codecs refuse in a request target.
func hasControl(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] == 0x7f {
			return true
		}
	}
	return false
}

func hasEscapedSlash(p string) bool {
	u := strings.ToUpper(p)
	return strings.Contains(u, "%2F") || strings.Contains(u, "%5C")
}

func unescapeSlashes(p string) string {
	r := strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`)
	return r.Replace(p)
}

// Character classes of Envoy's path canonicaliser.
const (
	charPass     = iota // copied as is
	charUnescape        // copied; decoded when sent escaped
	charEscape          // %-escaped in the output
	charInvalid         // the path is rejected
)

func pathCharClass(c byte) int {
	switch {
	case c == 0:
		return charInvalid
	case c < 0x20 || c >= 0x7f:
		return charEscape
	case isUnreserved(c) && c != '.':
		return charUnescape
	case strings.IndexByte(" \"#<>?^`{|}", c) >= 0:
		return charEscape
	}
	return charPass
}

// canonicalPath canonicalises characters and escapes (dot segments are
// removed after); ok is false for a path Envoy rejects (%00).
func canonicalPath(p string) (string, bool) {
	out := make([]byte, 0, len(p))
	ok, lastBadPercent := true, -10
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			var valid bool
			out, i, valid = canonicalEscape(p, i, out, &lastBadPercent)
			ok = ok && valid
		case pathCharClass(c) == charEscape:
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
		default:
			out = append(out, c)
		}
	}
	return string(out), ok
}

const upperHex = "0123456789ABCDEF"

// canonicalEscape handles the "%" at p[i]. It returns the output, the
// index of the last input byte consumed and false for %00.
func canonicalEscape(p string, i int, out []byte, lastBad *int) ([]byte, int, bool) {
	if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
		*lastBad = len(out)
		return append(out, '%'), i, true // not an escape: kept
	}
	v := unhex(p[i+1])<<4 | unhex(p[i+2])
	switch {
	case v == '.' || pathCharClass(v) == charUnescape:
		out = append(out, v)
		if *lastBad >= len(out)-3 {
			out = fixNestedEscape(p, i+3, *lastBad, out)
		}
		return out, i + 2, true
	case pathCharClass(v) == charInvalid:
		return append(out, p[i:i+3]...), i + 2, false
	}
	return append(out, p[i:i+3]...), i + 2, true // kept as sent
}

// fixNestedEscape: decoding must not create a new escape with an earlier
// lone "%" ("%%30%30" would become "%00"); that "%" becomes "%25".
func fixNestedEscape(p string, next, bad int, out []byte) []byte {
	tail := append([]byte(nil), out[bad:]...)
	if len(tail) == 2 && next < len(p) && p[next] < 0x80 {
		tail = append(tail, p[next])
	}
	if len(tail) == 3 && isHex(tail[1]) && isHex(tail[2]) {
		return append(out[:bad], append([]byte("%25"), out[bad+1:]...)...)
	}
	return out
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is RFC 3986 section 5.2.4 over "/"-separated
// segments.
func removeDotSegments(p string) string {
	segs := strings.Split(p, "/")[1:]
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}
