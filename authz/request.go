package authz

import (
	"github.com/wardmesh/ward/mesh"

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
	// with "," as Envoy does. Read-only: RequestFromCheck may share the
	// CheckRequest's own map.
	Headers map[string]string

	// normPath is Path normalised at the engine's level (Prepared.Decide
	// sets it on its own copy); normSet tells it from an empty path.
	normPath string
	normSet  bool
}

// matchPath is the path policies match: the normalised one when Decide
// computed it, else (Request.Input for tools) Path at the BASE level, or
// as sent when it does not normalise.
func (h *HTTPRequest) matchPath() string {
	if h.normSet {
		return h.normPath
	}
	if p, err := NormalizePath(h.Path, mesh.PathNormalizationBase); err == nil {
		return p
	}
	return h.Path
}

// normalized returns req with its path normalised at level, sharing
// everything else; req itself is not modified. A path Envoy would reject
// is an error (ErrBadPath).
func normalized(req *Request, level mesh.PathNormalization) (*Request, error) {
	if req.HTTP == nil || req.HTTP.normSet {
		return req, nil
	}
	p, err := NormalizePath(req.HTTP.Path, level)
	if err != nil {
		return nil, err
	}
	// One allocation for both copies: Decide runs this on every request,
	// cached ones included.
	n := &struct {
		r Request
		h HTTPRequest
	}{*req, *req.HTTP}
	n.h.normPath, n.h.normSet = p, true
	n.r.HTTP = &n.h
	return &n.r, nil
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
// policies read. It is built directly as an AST value (converting a Go
// map on every request costs more than the evaluation), and it is
// complete: every attribute a policy can test is present, null when the
// request does not have it, so compiled rules can reference input paths
// directly (no object.get) and an absent value matches nothing while its
// negation matches.
func (r *Request) Input() ast.Value { return r.input(nil) }

// input builds the document; when headers is not nil only those request
// headers (lower case) are included — the compiled policies of a workload
// read no others.
func (r *Request) input(headers map[string]bool) ast.Value {
	remote := r.RemoteIP
	if remote == "" {
		remote = r.Source.IP
	}
	port := ast.NullTerm()
	if r.Destination.Port != 0 {
		port = ast.StringTerm(strconv.FormatUint(uint64(r.Destination.Port), 10))
	}
	req := ast.NullTerm()
	if r.HTTP != nil {
		req = ast.NewTerm(r.HTTP.input(headers))
	}
	auth := ast.NewTerm(nullAuth)
	if r.Auth != nil {
		auth = ast.NewTerm(r.Auth.input())
	}
	return ast.NewObject(
		ast.Item(kHttp, ast.BooleanTerm(r.HTTP != nil)),
		ast.Item(kSource, ast.NewTerm(r.source())),
		ast.Item(kRemote, ast.NewTerm(ast.NewObject(ast.Item(kIp, str(remote))))),
		ast.Item(kDestination, ast.ObjectTerm(ast.Item(kIp, str(r.Destination.IP)), ast.Item(kPort, port))),
		ast.Item(kSni, str(r.SNI)),
		ast.Item(kRequest, req),
		ast.Item(kAuth, auth),
	)
}

// Key terms of the input document, built once: terms are immutable and
// allocating them per request was a third of the evaluation"s garbage.
var (
	kHttp           = ast.StringTerm("http")
	kSource         = ast.StringTerm("source")
	kRemote         = ast.StringTerm("remote")
	kDestination    = ast.StringTerm("destination")
	kSni            = ast.StringTerm("sni")
	kRequest        = ast.StringTerm("request")
	kAuth           = ast.StringTerm("auth")
	kPrincipal      = ast.StringTerm("principal")
	kAudiences      = ast.StringTerm("audiences")
	kPresenter      = ast.StringTerm("presenter")
	kClaims         = ast.StringTerm("claims")
	kIp             = ast.StringTerm("ip")
	kPort           = ast.StringTerm("port")
	kNamespace      = ast.StringTerm("namespace")
	kServiceAccount = ast.StringTerm("service_account")
	kTrustDomain    = ast.StringTerm("trust_domain")
	kMethod         = ast.StringTerm("method")
	kPath           = ast.StringTerm("path")
	kHost           = ast.StringTerm("host")
	kHeaders        = ast.StringTerm("headers")
)

var nullAuth = ast.NewObject(
	ast.Item(kPrincipal, ast.NullTerm()),
	ast.Item(kAudiences, ast.NullTerm()),
	ast.Item(kPresenter, ast.NullTerm()),
	ast.Item(kClaims, ast.ObjectTerm()),
)

// str is a string term, or null for "".
func str(s string) *ast.Term {
	if s == "" {
		return ast.NullTerm()
	}
	return ast.StringTerm(s)
}

func (r *Request) source() ast.Object {
	p := strings.TrimPrefix(r.Source.Principal, "spiffe://")
	ns, sa, ok := principalParts(p)
	nsT, saT := ast.NullTerm(), ast.NullTerm()
	if ok {
		nsT, saT = ast.StringTerm(ns), ast.StringTerm(ns+"/"+sa)
	}
	td, _ := trustDomain(p)
	return ast.NewObject(
		ast.Item(kIp, str(r.Source.IP)),
		ast.Item(kPrincipal, str(p)),
		ast.Item(kNamespace, nsT),
		ast.Item(kServiceAccount, saT),
		ast.Item(kTrustDomain, str(td)),
	)
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

func (h *HTTPRequest) input(only map[string]bool) ast.Object {
	hs := ast.NewObject()
	for k, v := range h.Headers {
		k = strings.ToLower(k)
		if only == nil || only[k] {
			hs.Insert(ast.StringTerm(k), ast.StringTerm(v))
		}
	}
	return ast.NewObject(
		ast.Item(kMethod, str(h.Method)),
		ast.Item(kPath, str(h.matchPath())),
		ast.Item(kHost, str(strings.ToLower(h.Host))),
		ast.Item(kHeaders, ast.NewTerm(hs)),
	)
}

func (a *Auth) input() ast.Object {
	aud := ast.NullTerm()
	if len(a.Audiences) > 0 {
		terms := make([]*ast.Term, len(a.Audiences))
		for i, s := range a.Audiences {
			terms[i] = ast.StringTerm(s)
		}
		aud = ast.ArrayTerm(terms...)
	}
	claims := ast.ObjectTerm()
	if a.Claims != nil {
		if v, err := ast.InterfaceToValue(a.Claims); err == nil {
			claims = ast.NewTerm(v)
		}
	}
	return ast.NewObject(
		ast.Item(kPrincipal, str(a.Principal)),
		ast.Item(kAudiences, aud),
		ast.Item(kPresenter, str(a.Presenter)),
		ast.Item(kClaims, claims),
	)
}
