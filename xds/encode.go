package xds

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Encode once.
//
// A state-of-the-world response is mostly its resources (4 MiB per proxy
// for the 1,000-service full mesh), and proxies with the same fingerprint
// get the same resources. gRPC's proto codec copies every response's
// resources into a fresh send buffer: at 2,000 proxies that was 8.4 GiB
// copied, most of it into freshly faulted-in pages, and ~30 s of the
// initial connect's ~40 s of server CPU.
//
// Instead, each config side's resources (a partial, shared by every proxy
// with that side's fingerprint) are encoded once as DiscoveryResponse
// field 2 (repeated Any) into one immutable byte slice, on first send.
// respond attaches to each response the list of those slices it is made
// of; the server's codec (Server.ServerOptions) then sends the response as
// a gRPC buffer list of a few bytes of per-stream fields (version, type,
// nonce) around the shared slices, without copying them: HTTP/2 framing
// reads them straight into its own reused write buffer. Protobuf fields
// may come in any order, but these are emitted in field-number order, so
// the bytes equal proto.Marshal's (a test holds them equal).
//
// Without the codec (a gRPC server built without ServerOptions) responses
// carry their Resources as usual and are marshalled per stream; the
// attachments are then dropped when the responses are collected.

// encoded is one list of resources in wire form as DiscoveryResponse
// field 2, built on first use and then shared read-only.
type encoded struct {
	anys []*anypb.Any
	once sync.Once
	b    []byte
}

func newEncoded(anys []*anypb.Any) *encoded { return &encoded{anys: anys} }

// encodeLazily gives each type's resources of p their (lazy) encoding.
func (p *partial) encodeLazily() {
	for i := range p.anys {
		p.enc[i] = newEncoded(p.anys[i])
	}
}

// encodeResources appends each Any as field 2 of a DiscoveryResponse.
func encodeResources(anys []*anypb.Any) []byte {
	n := 0
	for _, a := range anys {
		n += protowire.SizeTag(2) + protowire.SizeBytes(proto.Size(a))
	}
	b := make([]byte, 0, n)
	opts := proto.MarshalOptions{Deterministic: true, UseCachedSize: true}
	for _, a := range anys {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(a)))
		var err error
		if b, err = opts.MarshalAppend(b, a); err != nil {
			panic("xds: encode resource: " + err.Error()) // Anys of validated resources always marshal
		}
	}
	return b[:len(b):len(b)] // shared: nobody may append into it
}

// responseEncoding is what a response's Resources are made of, in order.
type responseEncoding struct {
	parts []*encoded
	count int // len(Resources) when attached, checked before use
}

// encoder is the gRPC codec of a server carrying Ward's xDS services: it
// sends responses with attached encodings without copying them and
// delegates everything else to gRPC's proto codec.
type encoder struct {
	base     encoding.CodecV2
	attached sync.Map // weak.Pointer[discovery.DiscoveryResponse] → *responseEncoding
	enabled  atomic.Bool

	// Bytes of DiscoveryResponses: shared = sent from encodings shared
	// between responses; marshalled = encoded for one response only
	// (per-stream fields, and responses without an encoding); encodedOnce
	// = written into shared encodings (once per config side and type).
	shared, marshalled, encodedOnce atomic.Int64
}

var _ encoding.CodecV2 = (*encoder)(nil)

func newEncoder() *encoder {
	return &encoder{base: encoding.GetCodecV2("proto")}
}

// ServerOptions returns the options a gRPC server carrying this server's
// xDS services (Register, RegisterSecure) should be built with: a codec
// that sends identical config as shared, pre-encoded bytes. Other services
// on the same gRPC server are encoded by gRPC's proto codec as before.
func (s *Server) ServerOptions() []grpc.ServerOption {
	s.enc.enabled.Store(true)
	return []grpc.ServerOption{grpc.ForceServerCodecV2(s.enc)}
}

// attach records that resp's Resources are the concatenation of parts. The
// record lives until the response is sent or collected.
func (e *encoder) attach(resp *discovery.DiscoveryResponse, parts []*encoded) {
	if !e.enabled.Load() {
		return
	}
	for _, p := range parts {
		if p == nil {
			return // not encodable: marshalled per stream
		}
	}
	k := weak.Make(resp)
	e.attached.Store(k, &responseEncoding{parts: parts, count: len(resp.Resources)})
	runtime.AddCleanup(resp, func(k weak.Pointer[discovery.DiscoveryResponse]) { e.attached.Delete(k) }, k)
}

// Name is the codec's content subtype: it replaces "proto".
func (e *encoder) Name() string { return e.base.Name() }

// Unmarshal is gRPC's.
func (e *encoder) Unmarshal(data mem.BufferSlice, v any) error { return e.base.Unmarshal(data, v) }

// Marshal sends an attached response as shared bytes.
func (e *encoder) Marshal(v any) (mem.BufferSlice, error) {
	resp, ok := v.(*discovery.DiscoveryResponse)
	if !ok {
		out, err := e.base.Marshal(v)
		if _, delta := v.(*discovery.DeltaDiscoveryResponse); delta && err == nil {
			e.marshalled.Add(int64(out.Len()))
		}
		return out, err
	}
	if x, ok := e.attached.LoadAndDelete(weak.Make(resp)); ok {
		if re := x.(*responseEncoding); re.count == len(resp.Resources) {
			return e.marshalShared(resp, re)
		}
	}
	out, err := e.base.Marshal(v)
	if err == nil {
		e.marshalled.Add(int64(out.Len()))
	}
	return out, err
}

// marshalShared writes version_info (1), the shared resources (2), then
// canary (3), type_url (4), nonce (5) and control_plane (6): the field
// order proto.Marshal uses.
func (e *encoder) marshalShared(resp *discovery.DiscoveryResponse, re *responseEncoding) (mem.BufferSlice, error) {
	var head []byte
	if v := resp.GetVersionInfo(); v != "" {
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendString(head, v)
	}
	tail, err := proto.MarshalOptions{Deterministic: true}.Marshal(&discovery.DiscoveryResponse{
		Canary: resp.GetCanary(), TypeUrl: resp.GetTypeUrl(), Nonce: resp.GetNonce(), ControlPlane: resp.GetControlPlane(),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal discovery response: %w", err)
	}
	out := make(mem.BufferSlice, 0, len(re.parts)+2)
	if len(head) > 0 {
		out = append(out, mem.SliceBuffer(head))
	}
	var shared int
	for _, p := range re.parts {
		b, fresh := p.bytesFresh()
		if fresh {
			e.encodedOnce.Add(int64(len(b)))
		}
		if len(b) > 0 {
			out = append(out, mem.SliceBuffer(b))
			shared += len(b)
		}
	}
	if len(tail) > 0 {
		out = append(out, mem.SliceBuffer(tail))
	}
	e.shared.Add(int64(shared))
	e.marshalled.Add(int64(len(head) + len(tail)))
	return out, nil
}

// bytesFresh returns the encoding, building it on the first call (fresh).
func (e *encoded) bytesFresh() (b []byte, fresh bool) {
	e.once.Do(func() { e.b, fresh = encodeResources(e.anys), true })
	return e.b, fresh
}

// EncodeStats are the byte counts of the xDS responses sent so far.
type EncodeStats struct {
	// Shared is sent from encodings shared between responses (written
	// once, EncodedOnce, and referenced by every response carrying them).
	Shared, EncodedOnce int64
	// Marshalled is encoded for one response only: per-stream fields, and
	// responses without a shared encoding (named subscriptions, delta).
	Marshalled int64
}

// EncodeStats returns the byte counts of the responses sent so far (only
// with ServerOptions' codec installed).
func (s *Server) EncodeStats() EncodeStats {
	return EncodeStats{Shared: s.enc.shared.Load(), EncodedOnce: s.enc.encodedOnce.Load(), Marshalled: s.enc.marshalled.Load()}
}
