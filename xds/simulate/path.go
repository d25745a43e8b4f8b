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
// with "/" (except "*" for OPTIONS and CONNECT without path); then the
// escaped-slashes action (%2F and %5C) runs, then RFC 3986 normalisation
// (unreserved %XX decoded, other escapes upper-cased, "\" to "/", dot
// segments — "%2e" spellings included — removed), then slash merging.
// The query is kept as sent. A fragment is rejected.
func NormalizePath(raw, method string, o PathOptions) (string, PathAction) {
	if method == "CONNECT" || (raw == "*" && method == "OPTIONS") {
		return raw, PathForward
	}
	if !strings.HasPrefix(raw, "/") || strings.Contains(raw, "#") {
		return raw, PathReject
	}
	path, query, hasQuery := strings.Cut(raw, "?")
	redirect := false
	switch o.EscapedSlashes {
	case hcm.HttpConnectionManager_REJECT_REQUEST:
		if hasEscapedSlash(path) {
			return raw, PathReject
		}
	case hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		path = unescapeSlashes(path)
	case hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		redirect = hasEscapedSlash(path)
		path = unescapeSlashes(path)
	}
	if o.Normalize {
		path = removeDotSegments(canonicalEscapes(strings.ReplaceAll(path, `\`, "/")))
	}
	if o.MergeSlashes {
		path = mergeSlashes(path)
	}
	if hasQuery {
		path += "?" + query
	}
	if redirect {
		return path, PathRedirect
	}
	return path, PathForward
}

func hasEscapedSlash(p string) bool {
	u := strings.ToUpper(p)
	return strings.Contains(u, "%2F") || strings.Contains(u, "%5C")
}

func unescapeSlashes(p string) string {
	r := strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`)
	return r.Replace(p)
}

// canonicalEscapes decodes %XX of unreserved characters and upper-cases
// the hex digits of the others.
func canonicalEscapes(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteByte(p[i])
			continue
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(p[i+1:i+3]))
		}
		i += 2
	}
	return b.String()
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
