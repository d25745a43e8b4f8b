package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

const generatedHeader = "# Generated from deploy/helm/ward (ward manifest generate --format kustomize); do not edit.\n"

// Kustomize returns the files of a kustomize base of ms: each manifest
// under its template's name, and a kustomization.yaml listing them in
// apply order.
func Kustomize(ms []Manifest) map[string][]byte {
	out := make(map[string][]byte, len(ms)+1)
	var k bytes.Buffer
	k.WriteString(generatedHeader)
	k.WriteString("# kubectl apply -k deploy/ (or ward install). Pin images with\n# ward manifest generate --format kustomize --images _out/images/images.json --out DIR:\n# an images: transformer would miss the injector's --ward-image.\n")
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, m := range ms {
		out[m.File] = append([]byte(generatedHeader), m.YAML...)
		fmt.Fprintf(&k, "- %s\n", m.File)
	}
	out["kustomization.yaml"] = k.Bytes()
	return out
}

// WriteKustomize writes Kustomize(ms) into dir.
func WriteKustomize(dir string, ms []Manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range Kustomize(ms) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write kustomize base: %w", err)
		}
	}
	return nil
}
