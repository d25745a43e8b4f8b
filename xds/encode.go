package xds

import (
	"crypto/sha256"
	"encoding/hex"
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
	anys  []*anypb.Any
	names []string // the resources' names (only delta needs them)
	once  sync.Once
	b     []byte
	// delta is the same resources as DeltaDiscoveryResponse field 2
	// (Resource: version, the Any, name), built on first use.
	deltaOnce sync.Once
	delta     []byte
	// versions are the resources' delta versions (content hashes), in
	// anys' order, built on first use by a delta stream.
	versionsOnce sync.Once
	versions     []string
}

// resourceVersions returns each resource's version: a hash of its bytes,
// the same in every process (a reconnecting proxy's
// initial_resource_versions match any replica's).
func (e *encoded) resourceVersions() []string {
	e.versionsOnce.Do(func() {
		e.versions = make([]string, len(e.anys))
		for i, a := range e.anys {
			sum := sha256.Sum256(a.GetValue())
			e.versions[i] = hex.EncodeToString(sum[:8])
		}
	})
	return e.versions
}

func newEncoded(anys []*anypb.Any) *encoded { return &encoded{anys: anys} }

// encodeLazily gives each type's resources of p their (lazy) encoding.
func (p *partial) encodeLazily() {
	for i := range p.anys {
		p.enc[i] = &encoded{anys: p.anys[i], names: p.names[i]}
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

// deltaBytesFresh returns the delta encoding, building it on the first
// call (fresh).
func (e *encoded) deltaBytesFresh() (b []byte, fresh bool) {
	e.deltaOnce.Do(func() {
		vs := e.resourceVersions()
		opts := proto.MarshalOptions{Deterministic: true}
		for i, a := range e.anys {
			r := &discovery.Resource{Name: e.names[i], Version: vs[i], Resource: a}
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(opts.Size(r)))
			var err error
			if b, err = opts.MarshalAppend(b, r); err != nil {
				panic("xds: encode delta resource: " + err.Error()) // Anys of validated resources always marshal
			}
		}
		e.delta, fresh = b[:len(b):len(b)], true
	})
	return e.delta, fresh
}

// responseEncoding is what a response's Resources are made of, in order.
type responseEncoding struct {
	parts []*encoded
	count int  // len(Resources) when attached, checked before use
	delta bool // parts' delta encodings (DeltaDiscoveryResponse)
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
	attachTo(e, resp, &responseEncoding{parts: parts, count: len(resp.Resources)})
}

// attachDelta is attach for a delta response whose Resources are every
// resource of parts, in order, with their content versions.
func (e *encoder) attachDelta(resp *discovery.DeltaDiscoveryResponse, parts []*encoded) {
	attachTo(e, resp, &responseEncoding{parts: parts, count: len(resp.Resources), delta: true})
}

func attachTo[T any](e *encoder, m *T, re *responseEncoding) {
	if !e.enabled.Load() {
		return
	}
	for _, p := range re.parts {
		if p == nil {
			return // not encodable: marshalled per stream
		}
	}
	k := weak.Make(m)
	e.attached.Store(k, re)
	runtime.AddCleanup(m, func(k weak.Pointer[T]) { e.attached.Delete(k) }, k)
}

// Name is the codec's content subtype: it replaces "proto".
func (e *encoder) Name() string { return e.base.Name() }

// Unmarshal is gRPC's.
func (e *encoder) Unmarshal(data mem.BufferSlice, v any) error { return e.base.Unmarshal(data, v) }

// Marshal sends an attached response as shared bytes.
func (e *encoder) Marshal(v any) (mem.BufferSlice, error) {
	var out mem.BufferSlice
	var err error
	switch m := v.(type) {
	case *discovery.DiscoveryResponse:
		if re := e.take(weak.Make(m), len(m.Resources)); re != nil {
			return e.marshalShared(m.GetVersionInfo(), re, &discovery.DiscoveryResponse{
				Canary: m.GetCanary(), TypeUrl: m.GetTypeUrl(), Nonce: m.GetNonce(), ControlPlane: m.GetControlPlane(),
			})
		}
	case *discovery.DeltaDiscoveryResponse:
		if re := e.take(weak.Make(m), len(m.Resources)); re != nil {
			return e.marshalShared(m.GetSystemVersionInfo(), re, &discovery.DeltaDiscoveryResponse{
				TypeUrl: m.GetTypeUrl(), RemovedResources: m.GetRemovedResources(), RemovedResourceNames: m.GetRemovedResourceNames(),
				Nonce: m.GetNonce(), ControlPlane: m.GetControlPlane(), ResourceErrors: m.GetResourceErrors(),
			})
		}
	default:
		return e.base.Marshal(v)
	}
	if out, err = e.base.Marshal(v); err == nil {
		e.marshalled.Add(int64(out.Len()))
	}
	return out, err
}

// take returns and forgets the encoding attached to key if it still
// matches the response (count resources).
func (e *encoder) take(key any, count int) *responseEncoding {
	x, ok := e.attached.LoadAndDelete(key)
	if !ok {
		return nil
	}
	if re := x.(*responseEncoding); re.count == count {
		return re
	}
	return nil
}

// marshalShared writes field 1 (version_info / system_version_info), the
// shared resources (field 2), then rest, the response's other fields (3
// and up): the field order proto.Marshal uses, so the bytes are the same.
func (e *encoder) marshalShared(version string, re *responseEncoding, rest proto.Message) (mem.BufferSlice, error) {
	var head []byte
	if version != "" {
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendString(head, version)
	}
	tail, err := proto.MarshalOptions{Deterministic: true}.Marshal(rest)
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
		if re.delta {
			b, fresh = p.deltaBytesFresh()
		}
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
	// responses without a shared encoding (named subscriptions, delta
	// responses carrying part of a config).
	Marshalled int64
}

// EncodeStats returns the byte counts of the responses sent so far (only
// with ServerOptions' codec installed).
func (s *Server) EncodeStats() EncodeStats {
	return EncodeStats{Shared: s.enc.shared.Load(), EncodedOnce: s.enc.encodedOnce.Load(), Marshalled: s.enc.marshalled.Load()}
}
