package sidecar

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/mesh/identity"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustID(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBootstrapGolden(t *testing.T) {
	b, err := Bootstrap(Config{
		Identity: identity.Identity{TrustDomain: "example.org", Namespace: "shop", ServiceAccount: "cart"},
		Name:     "cart-0", IP: "10.0.0.7", Labels: map[string]string{"app": "cart"},
		XDSAddress: "ward.ward-system.svc:15012", ControlPlaneID: mustID(t, "spiffe://example.org/ns/ward-system/sa/ward"),
		SDSSocket: "/var/run/ward/sds.sock",
	})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "envoy-bootstrap.golden.json")
	got, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantB, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	var want bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(wantB, &want); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&want, b, protocmp.Transform()); d != "" {
		t.Errorf("envoy bootstrap differs from %s (-want +got):\n%s", golden, d)
	}
	if _, err := Bootstrap(Config{XDSAddress: "no-port"}); err == nil {
		t.Error("accepted an xDS address without a port")
	}
}
