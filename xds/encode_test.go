package xds

import (
	"bytes"
	"fmt"
	"testing"
	"weak"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/google/go-cmp/cmp"
)

func testAnys(prefix string, n int) []*anypb.Any {
	cs := make([]*cluster.Cluster, n)
	for i := range cs {
		cs[i] = &cluster.Cluster{Name: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return marshalAll(cs)
}

// The codec's shared encoding is byte for byte what gRPC's proto codec
// would send, and parts are written once however many responses use them.
func TestEncoderSharedBytesEqualMarshal(t *testing.T) {
	e := newEncoder()
	e.enabled.Store(true)
	a, b := newEncoded(testAnys("a", 3)), newEncoded(testAnys("b", 2))
	empty := newEncoded(nil)
	for _, tc := range []struct {
		name    string
		parts   []*encoded
		version string
	}{
		{"two parts", []*encoded{a, b}, "v1"},
		{"one part, no version", []*encoded{a}, ""},
		{"empty part", []*encoded{empty, b}, "v2"},
		{"no parts", nil, "v3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res []*anypb.Any
			for _, p := range tc.parts {
				res = append(res, p.anys...)
			}
			for nonce := range 3 {
				resp := &discovery.DiscoveryResponse{VersionInfo: tc.version, TypeUrl: resource.ClusterType, Resources: res,
					ControlPlane: &core.ControlPlane{Identifier: "ward"}}
				e.attach(resp, tc.parts)
				resp.Nonce = fmt.Sprint(nonce + 1) // set after attach, as go-control-plane does
				got, err := e.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Materialize(), want) {
					t.Fatalf("shared encoding differs from proto.Marshal:\n got %x\nwant %x", got.Materialize(), want)
				}
				var back discovery.DiscoveryResponse
				if err := proto.Unmarshal(got.Materialize(), &back); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(resp, &back, protocmp.Transform()); d != "" {
					t.Fatalf("round trip (-want +got):\n%s", d)
				}
			}
		})
	}
	if got, want := e.encodedOnce.Load(), int64(len(a.b)+len(b.b)); got != want {
		t.Errorf("encoded once: %d bytes, want %d (each part once)", got, want)
	}
}

// A response whose Resources no longer match what was attached, or that
// has nothing attached, is marshalled by gRPC's codec as usual.
func TestEncoderFallback(t *testing.T) {
	e := newEncoder()
	e.enabled.Store(true)
	a := newEncoded(testAnys("a", 2))
	resp := &discovery.DiscoveryResponse{VersionInfo: "v", Resources: a.anys}
	e.attach(resp, []*encoded{a})
	resp.Resources = append(resp.Resources[:len(resp.Resources):len(resp.Resources)], testAnys("c", 1)...)
	plain := &discovery.DiscoveryResponse{VersionInfo: "w", Resources: a.anys}
	for _, m := range []*discovery.DiscoveryResponse{resp, plain} {
		got, err := e.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		var back discovery.DiscoveryResponse
		if err := proto.Unmarshal(got.Materialize(), &back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&back, m) || len(got.Materialize()) != len(want) {
			t.Fatalf("fallback marshal of %q differs", m.GetVersionInfo())
		}
	}
	if e.shared.Load() != 0 {
		t.Errorf("shared %d bytes, want 0", e.shared.Load())
	}
}

// Without ServerOptions the server attaches nothing (no bookkeeping for a
// codec that is not installed).
func TestEncoderDisabled(t *testing.T) {
	e := newEncoder()
	resp := &discovery.DiscoveryResponse{}
	e.attach(resp, []*encoded{newEncoded(nil)})
	if _, ok := e.attached.Load(weakOf(resp)); ok {
		t.Fatal("attached without the codec installed")
	}
}

func weakOf(r *discovery.DiscoveryResponse) weak.Pointer[discovery.DiscoveryResponse] {
	return weak.Make(r)
}

// A delta response made of whole config sides is sent as their shared
// delta encoding, byte for byte what proto.Marshal gives.
func TestEncoderDeltaSharedBytesEqualMarshal(t *testing.T) {
	e := newEncoder()
	e.enabled.Store(true)
	part := func(prefix string, n int) *encoded {
		p := &partial{}
		p.anys[2] = testAnys(prefix, n)
		for i := range n {
			p.names[2] = append(p.names[2], fmt.Sprintf("%s-%d", prefix, i))
		}
		p.encodeLazily()
		return p.enc[2]
	}
	parts := []*encoded{part("a", 3), part("b", 2)}
	resp := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: "v7", TypeUrl: resource.ClusterType, RemovedResources: []string{"gone"}}
	for _, p := range parts {
		vs := p.resourceVersions()
		for i, a := range p.anys {
			resp.Resources = append(resp.Resources, &discovery.Resource{Name: p.names[i], Version: vs[i], Resource: a})
		}
	}
	e.attachDelta(resp, parts)
	resp.Nonce = "3"
	got, err := e.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	if !bytes.Equal(got.Materialize(), want) {
		t.Fatalf("delta shared encoding differs from proto.Marshal")
	}
	if e.shared.Load() == 0 {
		t.Error("nothing sent from the shared encoding")
	}
}
