package extauthz

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/authz"
)

var update = flag.Bool("update", false, "rewrite golden responses")

type fixture struct {
	Policy  string `yaml:"policy"`
	Request string `yaml:"request"`
}

// TestReplayOPAEnvoyFixtures replays opa-envoy-plugin style CheckRequests
// against opa-envoy-plugin style policies served as a CUSTOM rego provider
// and compares the whole CheckResponse with the golden one, minus Ward's
// own additions (ward_* dynamic metadata, the status message).
func TestReplayOPAEnvoyFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/opaenvoy/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var fx fixture
			if err := yaml.Unmarshal(b, &fx); err != nil {
				t.Fatal(err)
			}
			meshYAML := "apiVersion: config.wardmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders:\n  - name: opa\n    rego:\n      module: |\n        " +
				strings.ReplaceAll(strings.TrimSpace(fx.Policy), "\n", "\n        ") + "\n"
			pol := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: app}\nspec: {action: CUSTOM, provider: {name: opa}, rules: [{}]}\n"
			c := start(t, newServer(t, Config{ReasonHeader: "-", Workload: &authz.Workload{Namespace: "app"}}, meshYAML, pol))
			var req authv3.CheckRequest
			if err := protojson.Unmarshal([]byte(fx.Request), &req); err != nil {
				t.Fatal(err)
			}
			resp, err := c.Check(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			strip(resp)
			golden := strings.TrimSuffix(f, ".yaml") + ".response.json"
			got := stableJSON(t, resp)
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantB, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			var want authv3.CheckResponse
			if err := protojson.Unmarshal(wantB, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, resp, protocmp.Transform()); diff != "" {
				t.Errorf("response differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// strip removes what opa-envoy-plugin does not send.
func strip(r *authv3.CheckResponse) {
	if r.Status != nil {
		r.Status.Message = ""
	}
	if md := r.GetDynamicMetadata(); md != nil {
		for k := range md.Fields {
			if strings.HasPrefix(k, "ward_") {
				delete(md.Fields, k)
			}
		}
		if len(md.Fields) == 0 {
			r.DynamicMetadata = nil
		}
	}
}

// stableJSON renders m as indented JSON with sorted keys: protojson's own
// output varies its whitespace on purpose.
func stableJSON(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
