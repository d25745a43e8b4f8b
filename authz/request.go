package authz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Request is what a decision looks at: the connection, and for HTTP the
// request and its verified JWT. Fields left empty are absent to policies.
type Request struct {
	Source      Peer
	Destination Peer
	// RemoteIP is the original client address (from X-Forwarded-For as
	// Envoy computes it); empty means the same as Source.IP.
	RemoteIP string
	SNI      string
	HTTP     *HTTPRequest // nil for TCP connections
	Auth     *Auth        // verified JWT; nil when there is none
	// Check is the original ext_authz request, from which CUSTOM rego
	// providers get opa-envoy-plugin's input; built from the fields above
	// when nil.
	Check *authv3.CheckRequest
}

// Peer is one end of the connection.
type Peer struct {
	IP   string
	Port uint32
	// Principal is the peer's mTLS identity, a SPIFFE ID with or without
	// the spiffe:// scheme; empty for plaintext.
	Principal string
}

// HTTPRequest holds the HTTP attributes of a request.
type HTTPRequest struct {
	Method string
	Path   string // as received, with query
	Host   string
	// Headers are keyed by lower-case name; repeated headers are joined
	// with "," as Envoy does.
	Headers map[string]string
}

// Auth is the result of JWT authentication.
type Auth struct {
	Principal string // <iss>/<sub>
	Audiences []string
	Presenter string // azp
	Claims    map[string]any
}

// AuthFromClaims derives request.auth.* from a verified JWT payload.
func AuthFromClaims(claims map[string]any) *Auth {
	a := &Auth{Claims: claims}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	if iss != "" || sub != "" {
		a.Principal = iss + "/" + sub
	}
	switch aud := claims["aud"].(type) {
	case string:
		a.Audiences = []string{aud}
	case []any:
		for _, x := range aud {
			if s, ok := x.(string); ok {
				a.Audiences = append(a.Audiences, s)
			}
		}
	}
	a.Presenter, _ = claims["azp"].(string)
	return a
}

// Input renders the request as the OPA input document the compiled
// policies read. It is built directly as an AST value: converting a Go map
// through JSON on every request costs more than the evaluation itself.
func (r *Request) Input() ast.Value {
	obj := ast.NewObject(ast.Item(ast.StringTerm("http"), ast.BooleanTerm(r.HTTP != nil)))
	obj.Insert(ast.StringTerm("source"), ast.NewTerm(r.source()))
	remote := r.RemoteIP
	if remote == "" {
		remote = r.Source.IP
	}
	obj.Insert(ast.StringTerm("remote"), ast.NewTerm(strObj("ip", remote)))
	dst := strObj("ip", r.Destination.IP)
	if r.Destination.Port != 0 {
		dst.Insert(ast.StringTerm("port"), ast.StringTerm(strconv.FormatUint(uint64(r.Destination.Port), 10)))
	}
	obj.Insert(ast.StringTerm("destination"), ast.NewTerm(dst))
	if r.SNI != "" {
		obj.Insert(ast.StringTerm("sni"), ast.StringTerm(r.SNI))
	}
	if r.HTTP != nil {
		obj.Insert(ast.StringTerm("request"), ast.NewTerm(r.HTTP.input()))
	}
	if r.Auth != nil {
		obj.Insert(ast.StringTerm("auth"), ast.NewTerm(r.Auth.input()))
	}
	return obj
}

func (r *Request) source() ast.Object {
	src := strObj("ip", r.Source.IP)
	p := strings.TrimPrefix(r.Source.Principal, "spiffe://")
	if p == "" {
		return src
	}
	src.Insert(ast.StringTerm("principal"), ast.StringTerm(p))
	if ns, sa, ok := principalParts(p); ok {
		src.Insert(ast.StringTerm("namespace"), ast.StringTerm(ns))
		src.Insert(ast.StringTerm("service_account"), ast.StringTerm(ns+"/"+sa))
	}
	return src
}

// principalParts extracts namespace and service account from
// <td>/ns/<ns>/sa/<sa>.
func principalParts(p string) (ns, sa string, ok bool) {
	_, rest, ok := strings.Cut(p, "/ns/")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, "/sa/")
	if !ok || ns == "" || sa == "" || strings.Contains(ns, "/") || strings.Contains(sa, "/") {
		return "", "", false
	}
	return ns, sa, true
}

func (h *HTTPRequest) input() ast.Object {
	o := strObj("method", h.Method)
	o.Insert(ast.StringTerm("path"), ast.StringTerm(NormalizePath(h.Path)))
	o.Insert(ast.StringTerm("host"), ast.StringTerm(strings.ToLower(h.Host)))
	hs := ast.NewObject()
	for k, v := range h.Headers {
		hs.Insert(ast.StringTerm(strings.ToLower(k)), ast.StringTerm(v))
	}
	o.Insert(ast.StringTerm("headers"), ast.NewTerm(hs))
	return o
}

func (a *Auth) input() ast.Object {
	o := strObj("principal", a.Principal)
	if a.Presenter != "" {
		o.Insert(ast.StringTerm("presenter"), ast.StringTerm(a.Presenter))
	}
	if len(a.Audiences) > 0 {
		terms := make([]*ast.Term, len(a.Audiences))
		for i, s := range a.Audiences {
			terms[i] = ast.StringTerm(s)
		}
		o.Insert(ast.StringTerm("audiences"), ast.ArrayTerm(terms...))
	}
	if a.Claims != nil {
		if v, err := ast.InterfaceToValue(a.Claims); err == nil {
			o.Insert(ast.StringTerm("claims"), ast.NewTerm(v))
		}
	}
	return o
}

// strObj returns {k: v}, or {} when v is empty (absent attributes stay
// undefined so that only not-conditions match them).
func strObj(k, v string) ast.Object {
	if v == "" {
		return ast.NewObject()
	}
	return ast.NewObject(ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
}

// NormalizePath strips the query and fragment and removes dot segments
// (RFC 3986 §5.2.4), as Envoy's normalize_path does before authorization,
// so "/a/../admin" is matched as "/admin".
func NormalizePath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}
