package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// JWTFilter is the Envoy filter whose metadata carries verified JWT
// payloads (jwt_authn with payload_in_metadata).
const JWTFilter = "envoy.filters.http.jwt_authn"

// DefaultJWTPayloadKey is the payload_in_metadata key Ward configures.
const DefaultJWTPayloadKey = "payload"

// ErrBadCheckRequest marks a check request that cannot be evaluated.
var ErrBadCheckRequest = errors.New("malformed check request")

// CheckOptions say how to read a CheckRequest.
type CheckOptions struct {
	// JWTPayloadKey is jwt_authn's payload_in_metadata key (default
	// "payload").
	JWTPayloadKey string
	// XFFTrustedHops is how many proxies in front of this one append to
	// X-Forwarded-For (Istio's numTrustedProxies). remote.ip is the
	// address that many entries from the right; with 0 (the default) it
	// is the direct peer, since nothing in the header can be trusted.
	XFFTrustedHops int
	// RemoteIPLastXFF: the HCM in front takes the client address from the
	// last X-Forwarded-For entry (an Envoy sidecar's use_remote_address
	// false with no trusted hops); XFFTrustedHops is then not used.
	RemoteIPLastXFF bool
}

// RequestFromCheck converts an ext_authz CheckRequest into a Request.
// Verified JWT claims are read from the jwt_authn filter metadata under
// the payload key: authentication runs before authorization, so the
// claims are already verified. A request without attributes or with an
// unusable address is rejected.
func RequestFromCheck(cr *authv3.CheckRequest, o CheckOptions) (*Request, error) {
	a := cr.GetAttributes()
	if a == nil {
		return nil, fmt.Errorf("%w: no attributes", ErrBadCheckRequest)
	}
	r := &Request{SNI: a.GetTlsSession().GetSni(), Check: cr}
	var err error
	if r.Source, err = peer(a.GetSource()); err != nil {
		return nil, fmt.Errorf("%w: source: %w", ErrBadCheckRequest, err)
	}
	if r.Destination, err = peer(a.GetDestination()); err != nil {
		return nil, fmt.Errorf("%w: destination: %w", ErrBadCheckRequest, err)
	}
	if h := a.GetRequest().GetHttp(); h != nil {
		r.HTTP = &HTTPRequest{Method: h.GetMethod(), Path: h.GetPath(), Host: h.GetHost(), Headers: headers(h)}
		r.RemoteIP = remoteIP(r.HTTP.Headers["x-forwarded-for"], o.hops())
		if r.HTTP.Method == "" || r.HTTP.Path == "" {
			return nil, fmt.Errorf("%w: http request without method or path", ErrBadCheckRequest)
		}
	}
	payloadKey := o.JWTPayloadKey
	if payloadKey == "" {
		payloadKey = DefaultJWTPayloadKey
	}
	if p := a.GetMetadataContext().GetFilterMetadata()[JWTFilter].GetFields()[payloadKey]; p != nil {
		st := p.GetStructValue()
		if st == nil {
			return nil, fmt.Errorf("%w: %s metadata %q is not an object", ErrBadCheckRequest, JWTFilter, payloadKey)
		}
		r.Auth = AuthFromClaims(st.AsMap())
	}
	return r, nil
}

// remoteIP picks the original client from X-Forwarded-For as Envoy does
// with xff_num_trusted_hops: the entry hops positions from the right.
// Empty (meaning the direct peer) when hops is 0 or the header is short or
// not an address.
// hops is how many X-Forwarded-For entries from the right remote.ip sits:
// the last one (1) for a sidecar HCM, else the trusted hops.
func (o CheckOptions) hops() int {
	if o.RemoteIPLastXFF {
		return 1
	}
	return o.XFFTrustedHops
}

func remoteIP(xff string, hops int) string {
	if hops <= 0 || xff == "" {
		return ""
	}
	parts := strings.Split(xff, ",")
	if len(parts) < hops {
		return ""
	}
	ip := strings.TrimSpace(parts[len(parts)-hops])
	if checkIP(ip) != nil || strings.Contains(ip, "/") {
		return ""
	}
	return ip
}

func peer(p *authv3.AttributeContext_Peer) (Peer, error) {
	out := Peer{Principal: p.GetPrincipal()}
	sa := p.GetAddress().GetSocketAddress()
	if sa == nil {
		return out, nil
	}
	out.IP = sa.GetAddress()
	out.Port = sa.GetPortValue()
	if out.IP != "" && checkIP(out.IP) != nil {
		return out, fmt.Errorf("address %q is not an IP", out.IP)
	}
	return out, nil
}

// headers returns the request headers keyed by lower-case name, from the
// headers map or (when Envoy sends raw headers) the header_map.
func headers(h *authv3.AttributeContext_HttpRequest) map[string]string {
	if hm := h.GetHeaderMap(); hm != nil && len(h.GetHeaders()) == 0 {
		out := make(map[string]string, len(hm.GetHeaders()))
		for _, kv := range hm.GetHeaders() {
			v := kv.GetValue()
			if v == "" {
				v = string(kv.GetRawValue())
			}
			k := strings.ToLower(kv.GetKey())
			if prev, ok := out[k]; ok {
				v = prev + "," + v
			}
			out[k] = v
		}
		return out
	}
	if lowerKeys(h.GetHeaders()) {
		// Zero copy: Envoy sends header names in lower case, so the
		// request's own map is already what a Request wants. It is shared,
		// never written (a Request's headers are read-only).
		return h.GetHeaders()
	}
	out := make(map[string]string, len(h.GetHeaders()))
	for k, v := range h.GetHeaders() {
		out[strings.ToLower(k)] = v
	}
	return out
}

func lowerKeys(m map[string]string) bool {
	for k := range m {
		for i := 0; i < len(k); i++ {
			if c := k[i]; 'A' <= c && c <= 'Z' {
				return false
			}
		}
	}
	return true
}

// EnvoyInput builds opa-envoy-plugin's input document from a CheckRequest:
// the protojson rendering of the request (input.attributes...), plus
// parsed_path, parsed_query, parsed_body, truncated_body and version, so
// Rego written for opa-envoy-plugin runs unchanged. A JSON or form body
// that does not parse is an error (the request is then denied with 400).
func EnvoyInput(cr *authv3.CheckRequest) (map[string]any, error) {
	b, err := protojson.Marshal(cr)
	if err != nil {
		return nil, fmt.Errorf("%w: marshal: %w", ErrBadCheckRequest, err)
	}
	in := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrBadCheckRequest, err)
	}
	h := cr.GetAttributes().GetRequest().GetHttp()
	path, query, err := parsePath(h.GetPath())
	if err != nil {
		return nil, err
	}
	in["parsed_path"] = path
	in["parsed_query"] = query
	body, truncated, err := parseBody(h)
	if err != nil {
		return nil, err
	}
	in["parsed_body"] = body
	in["truncated_body"] = truncated
	in["version"] = map[string]any{"encoding": "protojson", "ext_authz": "v3"}
	return in, nil
}

func parsePath(p string) ([]any, map[string]any, error) {
	u, err := url.Parse(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: path %q: %w", ErrBadCheckRequest, p, err)
	}
	segs := strings.Split(strings.TrimLeft(u.Path, "/"), "/")
	path := make([]any, len(segs))
	for i, s := range segs {
		path[i] = s
	}
	query := map[string]any{}
	for k, vs := range u.Query() {
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		query[k] = list
	}
	return path, query, nil
}

func parseBody(h *authv3.AttributeContext_HttpRequest) (any, bool, error) {
	raw := h.GetRawBody()
	if len(raw) == 0 {
		raw = []byte(h.GetBody())
	}
	hs := headers(h)
	if n, err := strconv.Atoi(hs["content-length"]); err == nil && n > len(raw) {
		return nil, true, nil
	}
	if len(raw) == 0 {
		return nil, false, nil
	}
	ct, _, _ := mime.ParseMediaType(hs["content-type"])
	switch ct {
	case "application/json":
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, false, fmt.Errorf("%w: json body: %w", ErrBadCheckRequest, err)
		}
		return v, false, nil
	case "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, false, fmt.Errorf("%w: form body: %w", ErrBadCheckRequest, err)
		}
		out := map[string]any{}
		for k, vs := range q {
			list := make([]any, len(vs))
			for i, v := range vs {
				list[i] = v
			}
			out[k] = list
		}
		return out, false, nil
	}
	return nil, false, nil
}

// CheckFromRequest renders a Request as the CheckRequest Envoy would send
// (used by `ward authz check` and by rego providers given a Request).
func CheckFromRequest(r *Request) *authv3.CheckRequest {
	a := &authv3.AttributeContext{
		Source:      peerProto(r.Source),
		Destination: peerProto(r.Destination),
	}
	if r.SNI != "" {
		a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: r.SNI}
	}
	if h := r.HTTP; h != nil {
		hs := map[string]string{":method": h.Method, ":path": h.Path, ":authority": h.Host}
		for k, v := range h.Headers {
			hs[strings.ToLower(k)] = v
		}
		a.Request = &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: h.Method, Path: h.Path, Host: h.Host, Headers: hs, Protocol: "HTTP/1.1",
		}}
	}
	if r.Auth != nil && r.Auth.Claims != nil {
		if st, err := structpb.NewStruct(map[string]any{DefaultJWTPayloadKey: r.Auth.Claims}); err == nil {
			a.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{JWTFilter: st}}
		}
	}
	return &authv3.CheckRequest{Attributes: a}
}

func peerProto(p Peer) *authv3.AttributeContext_Peer {
	out := &authv3.AttributeContext_Peer{Principal: p.Principal}
	if p.Principal != "" && !strings.HasPrefix(p.Principal, "spiffe://") {
		out.Principal = "spiffe://" + p.Principal
	}
	if p.IP != "" {
		out.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: p.IP, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p.Port},
		}}}
	}
	return out
}
