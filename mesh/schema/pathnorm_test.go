package schema

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

func decodeMesh(t *testing.T, spec string) (*mesh.MeshConfig, error) {
	t.Helper()
	docs, err := SplitYAML([]byte("apiVersion: config.wardmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n" + spec))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(docs[0], mesh.Source{})
	if err != nil {
		return nil, err
	}
	return d.MeshConfig, nil
}

// TestMeshConfigPathNormalization: Istio's pathNormalization decodes with
// every level, defaults to BASE, and an unknown level is rejected with its
// field path and the accepted levels.
func TestMeshConfigPathNormalization(t *testing.T) {
	for spec, want := range map[string]mesh.PathNormalization{
		"  trustDomain: cluster.local\n":                                   mesh.PathNormalizationBase,
		"  pathNormalization: {}\n":                                        mesh.PathNormalizationBase,
		"  pathNormalization: {normalization: DEFAULT}\n":                  mesh.PathNormalizationBase,
		"  pathNormalization: {normalization: NONE}\n":                     mesh.PathNormalizationNone,
		"  pathNormalization: {normalization: BASE}\n":                     mesh.PathNormalizationBase,
		"  pathNormalization: {normalization: MERGE_SLASHES}\n":            mesh.PathNormalizationMergeSlashes,
		"  pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}\n": mesh.PathNormalizationDecodeAndMergeSlashes,
	} {
		mc, err := decodeMesh(t, spec)
		if err != nil {
			t.Errorf("%q: %v", spec, err)
			continue
		}
		if got := mc.PathNormalizationLevel(); got != want {
			t.Errorf("%q: level %s, want %s", spec, got, want)
		}
	}
	_, err := decodeMesh(t, "  pathNormalization: {normalization: MERGE}\n")
	if err == nil || !strings.Contains(err.Error(), "spec.pathNormalization.normalization") || !strings.Contains(err.Error(), `"MERGE"`) || !strings.Contains(err.Error(), "DECODE_AND_MERGE_SLASHES") {
		t.Errorf("unknown level: error %v, want the field path, the value and the levels", err)
	}
	if _, err := decodeMesh(t, "  pathNormalization: {level: BASE}\n"); err == nil {
		t.Error("an unknown pathNormalization field was accepted")
	}
}
