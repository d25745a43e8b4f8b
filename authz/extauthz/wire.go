package extauthz

import (
	"context"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wireCodec delegates to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/authz"
)

// Marshal once per decision.
//
// A CheckResponse depends on the decision and on the check's decision id
// only: every allowed check by one rule gets the same status, the same
// (empty) OK response and the same dynamic metadata but for
// ward_decision_id. Marshalling it by reflection (structpb's map
// included) and building it was ~7 % of the server's CPU per check under
// load. Serve's server instead keeps, per decision shape (respKey), the
// response's wire form without the decision id, and sends it followed by
// a second dynamic_metadata field holding only ward_decision_id: a
// protobuf decoder merges repeated occurrences of a message field, and a
// map entry into a map, so the bytes decode to exactly the response
// response() builds (TestWireResponseDecodesLikeResponse holds them
// equal for every shape). Decisions with a provider, audit or dry-run
// rules, details, or names that are not valid UTF-8 take the ordinary
// path, as do checks on servers built with Register (RegisterMTLS).

// checkMethod is the Authorization service with a Check handler that
// may answer with a pre-encoded response (wireResponse); only wireCodec
// can send it, so it is registered only on Serve's own server.
var checkMethod = grpc.ServiceDesc{
	ServiceName: "envoy.service.auth.v3.Authorization",
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkWireHandler}},
	Metadata:    "envoy/service/auth/v3/external_auth.proto",
}

func checkWireHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(authv3.CheckRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor != nil { // interceptors expect a *CheckResponse
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
		return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return s.Check(ctx, req.(*authv3.CheckRequest))
		})
	}
	return s.checkWire(ctx, req), nil
}

// checkWire is Check answering with the pre-encoded response when the
// decision has one.
func (s *Server) checkWire(ctx context.Context, req *authv3.CheckRequest) any {
	id, d, r := s.evaluate(ctx, req, nil)
	px := proxyless(req)
	if w := s.wire.response(id, d, r, s.cfg.ReasonHeader, px); w != nil {
		return w
	}
	return response(id, d, r, s.cfg.ReasonHeader, px)
}

// wireResponse is a CheckResponse already in wire form.
type wireResponse struct{ b mem.BufferSlice }

// wireCodec is gRPC's proto codec that also sends wireResponses as they
// are and decodes CheckRequests without reflection (decode.go). Its name is "proto" so that it replaces gRPC's codec on Serve's
// server (grpc.ForceServerCodecV2).
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2("proto")} }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		return w.b, nil
	}
	return c.proto.Marshal(v)
}

// Unmarshal decodes CheckRequests with decodeCheckRequest.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*authv3.CheckRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return decodeCheckRequest(buf.ReadOnlyData(), req)
}

func (wireCodec) Name() string { return "proto" }

// respKey is everything but the decision id that response() reads of a
// decision without provider, audit, dry-run or detail.
type respKey struct {
	v                    authz.Verdict
	noRequest, http, pxl bool
	reasonHeader         string
}

// wireTemplates memoises each decision shape's response without its
// decision id. Bounded: past maxWireTemplates shapes (rule names are
// per snapshot), further shapes are marshalled per check.
type wireTemplates struct {
	m sync.Map // respKey → []byte
	n atomic.Int64
}

const maxWireTemplates = 4096

// response returns the check's response in wire form, or nil when the
// decision takes the ordinary path.
func (t *wireTemplates) response(id string, d *authz.Decision, r *authz.Request, reasonHeader string, pxl bool) *wireResponse {
	if d.Provider != nil || d.Detail != "" || len(d.Audit) > 0 || len(d.DryRun) > 0 || d.Shadow != nil ||
		!utf8.ValidString(d.Policy) || !utf8.ValidString(d.Rule) || !utf8.ValidString(id) {
		return nil
	}
	k := respKey{v: d.Verdict, noRequest: r == nil, http: r != nil && r.HTTP != nil, pxl: pxl, reasonHeader: reasonHeader}
	tmpl, ok := t.m.Load(k)
	if !ok {
		b, err := templateFor(d, r, reasonHeader, pxl)
		if err != nil {
			return nil
		}
		if t.n.Add(1) <= maxWireTemplates {
			t.m.Store(k, b)
		}
		tmpl = b
	}
	return &wireResponse{b: appendID(tmpl.([]byte), id)}
}

// templateFor marshals response() without ward_decision_id.
func templateFor(d *authz.Decision, r *authz.Request, reasonHeader string, pxl bool) ([]byte, error) {
	resp := response("", d, r, reasonHeader, pxl)
	delete(resp.GetDynamicMetadata().GetFields(), "ward_decision_id")
	return proto.MarshalOptions{Deterministic: true}.Marshal(resp)
}

// appendID copies tmpl into a pooled buffer followed by
// CheckResponse.dynamic_metadata (4) { fields (1) { key (1):
// "ward_decision_id", value (2) { string_value (3): id } } }.
func appendID(tmpl []byte, id string) mem.BufferSlice {
	const key = "ward_decision_id"
	value := protowire.SizeTag(3) + protowire.SizeBytes(len(id))
	entry := protowire.SizeTag(1) + protowire.SizeBytes(len(key)) + protowire.SizeTag(2) + protowire.SizeBytes(value)
	st := protowire.SizeTag(1) + protowire.SizeBytes(entry)
	n := len(tmpl) + protowire.SizeTag(4) + protowire.SizeBytes(st)
	pool := mem.DefaultBufferPool()
	buf := pool.Get(n)
	b := append((*buf)[:0], tmpl...)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(st))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entry))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(value))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, id)
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}
}
