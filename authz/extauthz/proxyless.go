package extauthz

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// ContextProxyless is the context extension a proxyless gRPC interceptor
// (package authz/grpcauthz) sets, with any non-empty value, on its checks.
// Such a check has no jwt_authn in front of it: the server authenticates
// the request's raw token itself, with the jwt_authn config Ward would
// give that workload's Envoy, before authorising.
const ContextProxyless = "ward.proxyless"

// ReasonUnauthenticated denies a proxyless check whose token failed JWT
// authentication (Envoy's jwt_authn answers 401 there).
const ReasonUnauthenticated authz.Reason = "unauthenticated"

func proxyless(req *authv3.CheckRequest) bool {
	return req.GetAttributes().GetContextExtensions()[ContextProxyless] != ""
}

// authenticate plays jwt_authn for a proxyless check: the workload's
// RequestAuthentications (authn.RequestAuthsFor, as for a proxyless
// proxy) become the jwt_authn config (authn.JWTAuthn with the server's
// key sets), which authn.Authenticate evaluates against the request's
// tokens. A rejected token is authn's error (authn.ErrJWTInvalid); a
// verified one becomes
// r.Auth (and the jwt_authn metadata of r.Check, for rego providers); no
// token (or no RequestAuthentication) leaves r.Auth nil.
func (s *Server) authenticate(snap *mesh.Snapshot, w authz.Workload, r *authz.Request) error {
	if r.HTTP == nil {
		return nil
	}
	cfg := s.jwt.config(snap, w, s.cfg.Keys)
	if cfg == nil {
		return nil
	}
	a, err := authn.Authenticate(cfg, tokenRequest(r.HTTP), s.cfg.Clock.Now())
	if err != nil {
		return err
	}
	payload := authn.PayloadMetadata(cfg, a)
	if payload == nil {
		return nil
	}
	r.Auth = authz.AuthFromClaims(payload)
	if st, err := structpb.NewStruct(map[string]any{authn.JWTPayloadKey: payload}); err == nil && r.Check != nil {
		r.Check = withJWTMetadata(r.Check, st)
	}
	return nil
}

// withJWTMetadata returns a shallow copy of cr (the caller's request is
// not modified) whose metadata context holds payload where jwt_authn
// would have put it, so rego providers see what they would behind Envoy.
func withJWTMetadata(cr *authv3.CheckRequest, payload *structpb.Struct) *authv3.CheckRequest {
	a := cr.GetAttributes()
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: a.GetSource(), Destination: a.GetDestination(), Request: a.GetRequest(),
		ContextExtensions: a.GetContextExtensions(), RouteMetadataContext: a.GetRouteMetadataContext(), TlsSession: a.GetTlsSession(),
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{authn.JWTFilterName: payload}},
	}}
}

// tokenRequest is what jwt_authn reads tokens from: headers, the query
// string of the path and the cookies.
func tokenRequest(h *authz.HTTPRequest) authn.TokenRequest {
	tr := authn.TokenRequest{Method: h.Method, Headers: h.Headers}
	if u, err := url.ParseRequestURI(h.Path); err == nil {
		tr.Query = u.Query()
	}
	if c := h.Headers["cookie"]; c != "" {
		tr.Cookies = map[string]string{}
		for _, ck := range (&http.Request{Header: http.Header{"Cookie": {c}}}).Cookies() {
			tr.Cookies[ck.Name] = ck.Value
		}
	}
	return tr
}

// jwtCache memoises the jwt_authn config per workload for one snapshot
// and the key sets it inlined: building it normalises and re-serialises
// key sets, far more work than a lookup. An entry is reused while the key
// sets the provider serves for its rules are the very ones it was built
// from (the "keys version"); a new snapshot empties the cache.
type jwtCache struct {
	mu      sync.Mutex
	version string
	entries map[string]*jwtEntry
}

type jwtEntry struct {
	policies []*mesh.Config
	keys     []string
	cfg      *jwtv3.JwtAuthentication
}

// maxJWTEntries bounds the cache; past it, it starts over.
const maxJWTEntries = 4096

func (c *jwtCache) config(snap *mesh.Snapshot, w authz.Workload, keys authn.KeySets) *jwtv3.JwtAuthentication {
	id := workloadKey(w)
	c.mu.Lock()
	if c.version != snap.Version() || len(c.entries) > maxJWTEntries {
		c.version, c.entries = snap.Version(), map[string]*jwtEntry{}
	}
	e := c.entries[id]
	c.mu.Unlock()
	if e == nil {
		proxy := &mesh.Proxy{Type: mesh.ProxyGRPC, Namespace: w.Namespace, Labels: w.Labels}
		e = &jwtEntry{policies: authn.RequestAuthsFor(snap, proxy)}
	}
	if len(e.policies) == 0 {
		c.store(snap.Version(), id, e)
		return nil
	}
	served := servedKeys(e.policies, keys)
	if e.cfg != nil && slices.Equal(served, e.keys) {
		return e.cfg
	}
	cfg, _ := authn.JWTAuthn(e.policies, keys) // findings (keys unavailable: fail closed) are reported by the control plane
	c.store(snap.Version(), id, &jwtEntry{policies: e.policies, keys: served, cfg: cfg})
	return cfg
}

func (c *jwtCache) store(version, id string, e *jwtEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == version {
		c.entries[id] = e
	}
}

func workloadKey(w authz.Workload) string {
	b, _ := json.Marshal(map[string]string(w.Labels)) // a string map always marshals, keys sorted
	return w.Namespace + "\x00" + string(b)
}

// servedKeys lists, rule by rule, the key set the provider serves now for
// rules that fetch theirs ("" when unavailable). Comparing two such lists
// is cheap: unchanged key sets are the same strings.
func servedKeys(policies []*mesh.Config, keys authn.KeySets) []string {
	var out []string
	for _, c := range policies {
		ra, _ := c.Spec.(*security.RequestAuthentication)
		for _, r := range ra.GetJwtRules() {
			if r == nil || r.GetJwks() != "" {
				continue
			}
			s := ""
			if keys != nil {
				s, _ = keys.JWKS(r.GetIssuer(), r.GetJwksUri())
			}
			out = append(out, s)
		}
	}
	return out
}

// explain is Decision.Explain, plus the authentication failure this
// server adds for proxyless checks.
func explain(d *authz.Decision) string {
	switch d.Reason {
	case ReasonUnauthenticated:
		return "denied: unauthenticated: " + d.Detail
	case ReasonCallerUnauthenticated, ReasonCallerForbidden:
		return "denied: " + string(d.Reason) + ": " + d.Detail
	}
	return d.Explain()
}

// tcpPort reports whether the workload's port dst is declared with a
// protocol Envoy would proxy as opaque TCP (TCP, TLS, unknown...): the
// service port whose endpoint on this workload is dst's address and port,
// else the service port whose target port (or number) is dst's port. A
// port no service declares keeps HTTP semantics (a proxyless server only
// serves the ports its listeners describe).
func tcpPort(snap *mesh.Snapshot, w authz.Workload, dst authz.Peer) bool {
	labels := w.Labels
	if labels == nil {
		labels = mesh.Labels{}
	}
	svcs := snap.ServicesForWorkload(w.Namespace, labels)
	for _, svc := range svcs {
		for _, sp := range svc.Ports {
			for _, ep := range snap.Endpoints(svc, sp) {
				if ep.Workload.Address == dst.IP && ep.Port == dst.Port {
					return !sp.Protocol.IsHTTP()
				}
			}
		}
	}
	for _, svc := range svcs {
		for _, sp := range svc.Ports {
			if sp.TargetPort == dst.Port || (sp.TargetPort == 0 && sp.Number == dst.Port) {
				return !sp.Protocol.IsHTTP()
			}
		}
	}
	return false
}

// asTCP is r as the TCP connection it is judged as: no HTTP request, no
// request authentication (jwt_authn never runs on TCP), and the CUSTOM
// rego providers' input built from the connection alone.
func asTCP(r *authz.Request) *authz.Request {
	t := *r
	t.HTTP, t.Auth, t.Check = nil, nil, nil
	return &t
}
