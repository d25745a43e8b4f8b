package authz

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wardmesh/ward/mesh"
)

// ErrBadPath marks a request path that Envoy's HTTP connection manager
// rejects with 400 before any filter runs; Ward's authorisation servers
// deny it.
var ErrBadPath = errors.New("request path rejected")

// NormalizePath returns the path, without its query, that Envoy's HTTP
// connection manager hands to its filters (and that RBAC's url_path
// matches) under a MeshConfig pathNormalization level, as Istio configures
// it (normalize_path, merge_slashes, path_with_escaped_slashes_action):
//
//   - every level: the path must start with "/" and carry no fragment
//     ("#") and no control character, space or DEL, or the request is
//     rejected (ErrBadPath);
//   - NONE: nothing else;
//   - BASE: RFC 3986 normalisation as Envoy does it (Chromium's URL path
//     canonicaliser): "." and ".." segments, also spelled %2E, removed; "\"
//     turned into "/"; %XX of unreserved characters (ALPHA DIGIT - _ ~)
//     decoded; other escapes kept as sent; characters that must be escaped
//     escaped;
//   - MERGE_SLASHES: BASE, then runs of "/" merged into one;
//   - DECODE_AND_MERGE_SLASHES: %2F and %5C (any case) decoded to "/" and
//     "\" first, then MERGE_SLASHES.
//
// It is the one implementation behind the Rego engine, the ext_authz
// server and the proxyless interceptor (which both decide through the
// engine), so they match the path the proxies' HCM matches.
func NormalizePath(p string, level mesh.PathNormalization) (string, error) {
	if p == "" || p[0] != '/' {
		return "", fmt.Errorf("%w: %q does not start with \"/\"", ErrBadPath, clip(p))
	}
	if strings.IndexByte(p, '#') >= 0 {
		return "", fmt.Errorf("%w: %q carries a fragment", ErrBadPath, clip(p))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%w: %q holds control character or space %#02x", ErrBadPath, clip(p), c)
		}
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	switch level {
	case mesh.PathNormalizationNone:
		return p, nil
	case "", mesh.PathNormalizationDefault, mesh.PathNormalizationBase:
		return canonicalPath(p)
	case mesh.PathNormalizationMergeSlashes:
		c, err := canonicalPath(p)
		return mergeSlashes(c), err
	case mesh.PathNormalizationDecodeAndMergeSlashes:
		c, err := canonicalPath(unescapeSlashes(p))
		return mergeSlashes(c), err
	}
	return "", fmt.Errorf("%w: unknown path normalization level %q", ErrBadPath, level)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// unescapeSlashes decodes %2F and %5C in any case (Envoy's
// UNESCAPE_AND_FORWARD).
func unescapeSlashes(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F') {
			b.WriteByte('/')
			i += 2
		} else if p[i] == '%' && i+2 < len(p) && p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C') {
			b.WriteByte('\\')
			i += 2
		} else {
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// Path character classes of Envoy's path canonicaliser.
const (
	pcPass     = iota // copied
	pcUnescape        // copied; when %-escaped, decoded
	pcEscape          // %-escaped in the output
	pcInvalid         // escaped, and the path is rejected
)

func pathClass(c byte) int {
	switch {
	case c == 0:
		return pcInvalid
	case c < 0x20, c >= 0x7f:
		return pcEscape
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
		return pcUnescape
	}
	switch c {
	case ' ', '"', '#', '%', '<', '>', '?', '\\', '^', '`', '{', '|', '}':
		return pcEscape
	}
	return pcPass
}

const upperHex = "0123456789ABCDEF"

// canonicalPath removes dot segments and canonicalises escapes the way
// Envoy's normalize_path does (Chromium's CanonicalizePath); p starts
// with "/".
func canonicalPath(p string) (string, error) {
	if plainPath(p) {
		return p, nil // the common case, on every request: no copy
	}
	out := make([]byte, 0, len(p))
	ok := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case dotLen(p, i) > 0:
			i = canonicalDot(p, i, dotLen(p, i), &out)
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			var valid bool
			out, i, valid = canonicalEscape(p, i, out)
			ok = ok && valid
		case pathClass(c) == pcPass, pathClass(c) == pcUnescape:
			out = append(out, c)
		default: // pcEscape; pcInvalid (NUL) was rejected before
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: %q holds an invalid escaped character", ErrBadPath, clip(p))
	}
	return string(out), nil
}

// plainPath reports whether canonicalPath would return p unchanged: no
// dot, escape, backslash or character to escape.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '.' || c == '%' || c == '\\' {
			return false
		}
		if cl := pathClass(c); cl != pcPass && cl != pcUnescape {
			return false
		}
	}
	return true
}

// canonicalEscape handles the "%" at p[i]: an escaped unreserved
// character is decoded, other escapes are kept in the case sent, a "%"
// not followed by two hex digits passes alone (as in Envoy). It returns
// the output, the index of the last byte consumed and false for an
// escape Envoy rejects (%00).
func canonicalEscape(p string, i int, out []byte) ([]byte, int, bool) {
	v, valid := unhex(p, i)
	if !valid {
		return append(out, '%'), i, true
	}
	switch pathClass(v) {
	case pcUnescape:
		return append(out, v), i + 2, true
	case pcInvalid:
		return append(out, p[i:i+3]...), i + 2, false
	}
	return append(out, p[i:i+3]...), i + 2, true
}

// canonicalDot handles the dot of length n ("." or "%2E") at p[i] and
// returns the index of the last input byte it consumed.
func canonicalDot(p string, i, n int, out *[]byte) int {
	if len(*out) == 0 || (*out)[len(*out)-1] != '/' {
		*out = append(*out, '.') // part of a name
		return i + n - 1
	}
	after := i + n
	switch {
	case after == len(p): // "/." at the end
		return after - 1
	case isSlash(p[after]): // "/./"
		return after
	}
	if m := dotLen(p, after); m > 0 {
		end := after + m
		if end == len(p) || isSlash(p[end]) { // "/.." at the end or "/../"
			*out = backUpToSlash(*out)
			if end == len(p) {
				return end - 1
			}
			return end
		}
	}
	*out = append(*out, '.') // "/.x" or "/..x": a name
	return i + n - 1
}

func isSlash(c byte) bool { return c == '/' || c == '\\' }

// dotLen is 1 for ".", 3 for "%2E"/"%2e", else 0.
func dotLen(p string, i int) int {
	if p[i] == '.' {
		return 1
	}
	if p[i] == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E') {
		return 3
	}
	return 0
}

// backUpToSlash drops the last segment of out, which ends with "/",
// keeping the root.
func backUpToSlash(out []byte) []byte {
	i := len(out) - 1
	if i == 0 {
		return out
	}
	i--
	for i > 0 && out[i] != '/' {
		i--
	}
	return out[:i+1]
}

func unhex(p string, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	h, ok1 := fromHex(p[i+1])
	l, ok2 := fromHex(p[i+2])
	return h<<4 | l, ok1 && ok2
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
