package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fullCheck is a CheckRequest with every field Envoy's ext_authz filter
// fills, and a few it may.
func fullCheck() *authv3.CheckRequest {
	r := check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items?x=1")
	a := r.Attributes
	a.Source.Service, a.Source.Certificate = "web", "-----BEGIN CERTIFICATE-----"
	a.Source.Labels = map[string]string{"app": "web", "": ""}
	a.Destination.Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
	a.Destination.Address.GetSocketAddress().ResolverName, a.Destination.Address.GetSocketAddress().Ipv4Compat = "r", true
	a.Destination.Principal = "spiffe://cluster.local/ns/shop/sa/cart"
	h := a.Request.Http
	h.Id, h.Scheme, h.Query, h.Fragment, h.Size, h.Protocol, h.Body, h.RawBody = "42", "https", "x=1", "f", -1, "HTTP/2", "body", []byte{0, 1}
	a.Request.Time = &timestamppb.Timestamp{Seconds: 1_700_000_000, Nanos: -5}
	return r
}

func seeds() []*authv3.CheckRequest {
	withMD := fullCheck()
	md, _ := structpb.NewStruct(map[string]any{"payload": map[string]any{"iss": "i", "sub": "s", "n": 1.5}})
	withMD.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": md}}
	withMD.Attributes.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"r": md}}
	withMD.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "cart"}
	withMD.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "a", Value: "b"}}}
	named := fullCheck()
	named.Attributes.Source.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "http"}
	pipe := fullCheck()
	pipe.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/p"}}}
	return []*authv3.CheckRequest{{}, {Attributes: &authv3.AttributeContext{}}, fullCheck(), withMD, named, pipe,
		check("", "", "", "", ""), proxylessCheck("t", true)}
}

// FuzzDecodeCheckRequest: decodeCheckRequest agrees with proto.Unmarshal
// on any input — the same error or not, and an equal message.
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, r := range seeds() {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// Repeated fields: a second message merges, the last scalar wins.
		f.Add(append(append([]byte{}, b...), b...))
	}
	f.Add([]byte{0x0a, 0x02, 0x52, 0x00})       // context_extensions entry, empty
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}) // truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		want, got := new(authv3.CheckRequest), new(authv3.CheckRequest)
		werr := proto.Unmarshal(b, want)
		gerr := decodeCheckRequest(b, got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v; decodeCheckRequest: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(want, got) {
			t.Fatalf("decoded differently:\nproto.Unmarshal:    %v\ndecodeCheckRequest: %v", want, got)
		}
	})
}

// TestDecodeFastPath: what Envoy sends on every check is decoded without
// the generic decoder; a field it does not know is not.
func TestDecodeFastPath(t *testing.T) {
	for i, r := range seeds() {
		b, _ := proto.Marshal(r)
		got := new(authv3.CheckRequest)
		err := decodeFast(b, got)
		if i == 5 { // Address.pipe
			if err == nil {
				t.Error("pipe address: decoded without the generic decoder")
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %d: %v", i, err)
		} else if !proto.Equal(r, got) {
			t.Errorf("seed %d: decoded %v, want %v", i, got, r)
		}
	}
	b, _ := proto.Marshal(fullCheck())
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	if err := decodeFast(b, new(authv3.CheckRequest)); err == nil {
		t.Error("unknown field 99: decoded without the generic decoder")
	}
	got := new(authv3.CheckRequest)
	if err := decodeCheckRequest(b, got); err != nil || len(got.ProtoReflect().GetUnknown()) == 0 {
		t.Errorf("unknown field 99: err %v, unknown fields %x", err, got.ProtoReflect().GetUnknown())
	}
}

// BenchmarkDecodeCheckRequest: the load generator's request shape
// (test/bench), by proto.Unmarshal and by decodeCheckRequest.
func BenchmarkDecodeCheckRequest(b *testing.B) {
	r := check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/team-9/sa/web", "GET", "/api/v9/items/7")
	h := r.Attributes.Request.Http
	h.Id, h.Host, h.Protocol = "7", "cart.shop.svc.cluster.local", "HTTP/2"
	h.Headers = map[string]string{":method": "GET", ":path": h.Path, ":authority": h.Host, "x-tenant": "tenant-9",
		"user-agent": "ward-bench", "accept": "application/json", "x-request-id": "req-7"}
	raw, _ := proto.Marshal(r)
	for _, c := range []struct {
		name   string
		decode func([]byte, *authv3.CheckRequest) error
	}{
		{"proto.Unmarshal", func(b []byte, m *authv3.CheckRequest) error { return proto.Unmarshal(b, m) }},
		{"decodeCheckRequest", decodeCheckRequest},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.decode(raw, new(authv3.CheckRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeRecursionLimit: metadata nested up to and past protobuf's
// recursion limit is accepted or rejected as proto.Unmarshal does.
func TestDecodeRecursionLimit(t *testing.T) {
	nested := func(levels int) []byte {
		var st []byte // Struct
		for range levels {
			var v []byte // Value.struct_value (5)
			v = protowire.AppendTag(v, 5, protowire.BytesType)
			v = protowire.AppendBytes(v, st)
			var e []byte // Struct.fields entry
			e = protowire.AppendTag(e, 1, protowire.BytesType)
			e = protowire.AppendString(e, "a")
			e = protowire.AppendTag(e, 2, protowire.BytesType)
			e = protowire.AppendBytes(e, v)
			st = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
		}
		var me []byte // Metadata.filter_metadata entry
		me = protowire.AppendTag(me, 1, protowire.BytesType)
		me = protowire.AppendString(me, "k")
		me = protowire.AppendTag(me, 2, protowire.BytesType)
		me = protowire.AppendBytes(me, st)
		md := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), me)
		attrs := protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), md)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), attrs)
	}
	var flipped bool
	for levels := 3329; levels <= 3334; levels++ {
		b := nested(levels)
		werr := proto.Unmarshal(b, new(authv3.CheckRequest))
		gerr := decodeCheckRequest(b, new(authv3.CheckRequest))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%d levels: proto.Unmarshal: %v; decodeCheckRequest: %v", levels, werr, gerr)
		}
		flipped = flipped || werr != nil
	}
	if !flipped {
		t.Error("the recursion limit was not reached")
	}
}

// TestDecodeOwnsItsBytes: gRPC reuses the buffer a request arrived in;
// what decodeCheckRequest returns must not change when it does.
func TestDecodeOwnsItsBytes(t *testing.T) {
	want := fullCheck()
	b, _ := proto.Marshal(want)
	got := new(authv3.CheckRequest)
	if err := decodeCheckRequest(b, got); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if !proto.Equal(want, got) {
		t.Errorf("after the input buffer was reused: %v, want %v", got, want)
	}
}
