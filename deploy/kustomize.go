package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"sigs.k8s.io/yaml"
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

// WriteChart writes the Helm chart into dir with v as its values.yaml, so
// that `helm install ward dir` installs what `ward install` with the same
// values does. With the default values the chart is copied unchanged.
func WriteChart(dir string, v Values) error {
	err := fs.WalkDir(Chart(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(Chart(), p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	if reflect.DeepEqual(v, Default()) {
		return nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	header := "# Values as `ward manifest generate --format helm` was given them; the\n# documented defaults are deploy/helm/ward/values.yaml in Ward's repository.\n"
	return os.WriteFile(filepath.Join(dir, "values.yaml"), append([]byte(header), b...), 0o644)
}
