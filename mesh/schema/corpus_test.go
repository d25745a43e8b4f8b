package schema

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh"
)

// decodeFile splits and decodes every document of a testdata file.
func decodeFile(t *testing.T, file string) ([]*Decoded, []error) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := SplitYAML(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []*Decoded
	var errs []error
	for _, d := range docs {
		dec, err := Decode(d, mesh.Source{File: file})
		out = append(out, dec)
		errs = append(errs, err)
	}
	return out, errs
}

func TestValidCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no valid corpus")
	}
	seen := map[string]bool{}
	for _, f := range files {
		decs, errs := decodeFile(t, f)
		for i, d := range decs {
			if errs[i] != nil {
				t.Errorf("%s: decode: %v", f, errs[i])
				continue
			}
			if d.Config == nil {
				t.Errorf("%s: document %d ignored: %s", f, i, d.Ignored)
				continue
			}
			seen[d.Config.APIVersion+" "+string(d.Config.Kind)] = true
			if fes := Validate(d.Config); len(fes) > 0 {
				t.Errorf("%s: %s: %v", f, d.Config.Key(), (&ObjectError{Errors: fes}).Error())
			}
		}
	}
	// Every kind in every accepted API version appears in the corpus.
	for _, k := range mesh.Kinds() {
		info, _ := k.Info()
		for _, v := range info.Versions {
			if gv := info.Group + "/" + v + " " + string(k); !seen[gv] {
				t.Errorf("valid corpus has no %s", gv)
			}
		}
	}
}

// wantPaths reads the "# want: <path>" lines of an invalid case.
func wantPaths(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "# want:"); ok {
			want = append(want, strings.TrimSpace(p))
		}
	}
	return want
}

// gotPaths returns the field paths reported for a document, from
// decoding or, when it decodes, from validation.
func gotPaths(t *testing.T, d *Decoded, err error) ([]string, string) {
	t.Helper()
	var fes []FieldError
	var oe *ObjectError
	switch {
	case errors.As(err, &oe):
		fes = oe.Errors
	case err != nil:
		t.Fatalf("decode: %v", err)
	case d.Config == nil:
		t.Fatalf("ignored: %s", d.Ignored)
	default:
		fes = Validate(d.Config)
	}
	var paths []string
	for _, fe := range fes {
		paths = append(paths, fe.Path)
		if fe.Message == "" {
			t.Errorf("%s: empty message", fe.Path)
		}
	}
	return paths, (&ObjectError{Errors: fes}).Error()
}

func TestInvalidCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 40 {
		t.Fatalf("invalid corpus has %d cases, want at least 40", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			want := wantPaths(t, f)
			if len(want) == 0 {
				t.Fatal("case has no \"# want:\" lines")
			}
			decs, errs := decodeFile(t, f)
			if len(decs) != 1 {
				t.Fatalf("case holds %d documents, want 1", len(decs))
			}
			got, msg := gotPaths(t, decs[0], errs[0])
			slices.Sort(got)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s\nerrors: %s", diff, msg)
			}
		})
	}
}

// TestAllViolationsReported checks that validation does not stop at the
// first problem: three independent mistakes give three errors.
func TestAllViolationsReported(t *testing.T) {
	const doc = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: three, namespace: prod}
spec:
  action: DENY
  rules:
  - to:
    - operation:
        ports: ["http"]
        paths: ["/a/{**}/{*}"]
    when:
    - key: source.ip
      values: ["10.0.0.300"]
`
	docs, err := SplitYAML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(docs[0], mesh.Source{File: "three.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	err = ValidateObject(dec.Config, docs[0])
	var oe *ObjectError
	if !errors.As(err, &oe) {
		t.Fatalf("ValidateObject = %v, want *ObjectError", err)
	}
	want := []FieldError{
		{Path: "spec.rules[0].to[0].operation.ports[0]", Line: 10},
		{Path: "spec.rules[0].to[0].operation.paths[0]", Line: 11},
		{Path: "spec.rules[0].when[0].values[0]", Line: 14},
	}
	if diff := cmp.Diff(want, oe.Errors, cmp.Comparer(func(a, b FieldError) bool {
		return a.Path == b.Path && a.Line == b.Line
	})); diff != "" {
		t.Errorf("errors (-want +got):\n%s\n%v", diff, err)
	}
	for _, s := range []string{`"http"`, `/a/{**}/{*}`, `10.0.0.300`, "AuthorizationPolicy prod/three"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}
