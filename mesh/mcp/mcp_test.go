package mcp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

func entry() *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindWorkloadEntry, Namespace: "shop", Name: "db-1",
		Labels: map[string]string{"a": "1", "b": "2", "c": "3"}, CreationTimestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Spec: &networking.WorkloadEntry{Address: "10.0.0.2", ServiceAccount: "db", Labels: map[string]string{"x": "1", "y": "2", "z": "3"}}}
}

// Encode then Decode gives the object back (metadata the model keeps and
// the spec), and equal objects always get equal versions (deterministic
// encoding of maps).
func TestRoundTripAndStableVersion(t *testing.T) {
	r, err := mcp.Encode(entry())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := mcp.Encode(entry())
		if again.Version != r.Version {
			t.Fatalf("version changed between encodings: %s, %s", r.Version, again.Version)
		}
	}
	got, err := mcp.Decode(mcp.TypeWorkloadEntry, r.Name, r.Resource)
	if err != nil {
		t.Fatal(err)
	}
	want := entry()
	if got.Key() != want.Key() || !got.CreationTimestamp.Equal(want.CreationTimestamp) || !cmp.Equal(got.Labels, want.Labels) {
		t.Errorf("meta = %+v", got.Meta)
	}
	if d := cmp.Diff(want.Spec, got.Spec, protocmp.Transform()); d != "" {
		t.Errorf("spec (-want +got):\n%s", d)
	}
	m, err := mcp.EncodeMesh(mesh.MeshConfig{TrustDomain: "example.org", RootNamespace: "root"})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mcp.DecodeMesh(m.Resource)
	if err != nil || mc.TrustDomain != "example.org" || mc.RootNamespace != "root" {
		t.Errorf("mesh = %+v, %v", mc, err)
	}
}

// A resource filed under another name, or of another type, is refused
// with its name: the node proxy NACKs it.
func TestDecodeRefusals(t *testing.T) {
	r, _ := mcp.Encode(entry())
	for name, tc := range map[string]struct{ url, name string }{
		"renamed":      {mcp.TypeWorkloadEntry, "shop/other"},
		"wrong type":   {mcp.TypeAuthorizationPolicy, "shop/db-1"},
		"unknown type": {"example.com/v1/Thing", "shop/db-1"},
	} {
		if _, err := mcp.Decode(tc.url, tc.name, r.Resource); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tc.name)
		}
	}
}
