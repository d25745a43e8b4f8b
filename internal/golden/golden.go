// Package golden owns the comparison of protobuf messages with golden
// files for tests: testdata/<name>.golden.yaml holds the message as
// protojson rendered as YAML, compared with protocmp and rewritten when
// the test runs with -update.
package golden

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"
)

// Proto compares got with testdata/<name>.golden.yaml; with update it
// rewrites the file instead.
func Proto(t testing.TB, name string, got proto.Message, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.yaml")
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if update {
		y, err := yaml.JSONToYAML(js)
		if err == nil {
			err = os.MkdirAll("testdata", 0o755)
		}
		if err == nil {
			err = os.WriteFile(path, y, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	wantJS, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	want := got.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(wantJS, want); err != nil {
		t.Fatalf("decode golden %s: %v", path, err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s mismatch (-golden +got); rerun with -update if intended:\n%s", path, diff)
	}
}
