package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh"
)

// The compat corpus (testdata/compat) pins issue #14's classes: Istio
// YAML that Istio accepts and Ward used to reject, the istio.io/api v1.32
// fields, checks beyond Istio's that are only warnings, and error messages
// that point at the field (line, path, did-you-mean). Each file holds one
// document and says what to expect:
//
//	# want-error: <path> line=<n> "<part of the message>"
//	# want-warning: <path> "<part of the message>"
//
// A file without want-error lines must be accepted; every want-error and
// want-warning must be reported, and nothing else.

var wantLine = regexp.MustCompile(`^#\s*want-(error|warning):\s*(\S+)(?:\s+line=(\d+))?\s+"(.*)"\s*$`)

type compatWant struct {
	warning bool
	path    string
	line    int
	msg     string
}

func (w compatWant) String() string {
	kind := "error"
	if w.warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s %s line=%d %q", kind, w.path, w.line, w.msg)
}

func compatWants(t *testing.T, data []byte) []compatWant {
	t.Helper()
	var out []compatWant
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "# want-") {
			continue
		}
		m := wantLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("malformed directive %q", l)
		}
		w := compatWant{warning: m[1] == "warning", path: m[2], msg: strings.ReplaceAll(m[4], `\"`, `"`)}
		if m[3] != "" {
			w.line, _ = strconv.Atoi(m[3])
		}
		out = append(out, w)
	}
	return out
}

// compatCheck decodes and validates the one document of a case and
// returns its errors (with lines) and warnings.
func compatCheck(t *testing.T, file string, data []byte) (*ObjectError, []FieldError) {
	t.Helper()
	docs, err := SplitYAML(data)
	if err != nil || len(docs) != 1 {
		t.Fatalf("want one document, got %d (%v)", len(docs), err)
	}
	dec, err := Decode(docs[0], mesh.Source{File: file})
	var oe *ObjectError
	switch {
	case errors.As(err, &oe):
		return oe, nil
	case err != nil:
		t.Fatalf("decode: %v", err)
	case dec.Config == nil:
		t.Fatalf("ignored: %s", dec.Ignored)
	}
	err = ValidateObject(dec.Config, docs[0])
	if err != nil && !errors.As(err, &oe) {
		t.Fatalf("validate: %v", err)
	}
	return oe, Warnings(dec.Config)
}

func TestCompatCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/compat/*.yaml")
	if len(files) < 20 {
		t.Fatalf("compat corpus has %d cases", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants := compatWants(t, data)
			oe, warns := compatCheck(t, f, data)
			var got []compatWant
			if oe != nil {
				for _, fe := range oe.Errors {
					got = append(got, compatWant{path: fe.Path, line: fe.Line, msg: fe.Message})
				}
			}
			for _, w := range warns {
				got = append(got, compatWant{warning: true, path: w.Path, msg: w.Message})
			}
			matchWants(t, wants, got, oe)
		})
	}
}

// matchWants pairs every expectation with one report, and fails on
// reports nobody expected.
func matchWants(t *testing.T, wants, got []compatWant, oe *ObjectError) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range wants {
		i := slices.IndexFunc(got, func(g compatWant) bool {
			return g.warning == w.warning && g.path == w.path && (w.warning || g.line == w.line) && strings.Contains(g.msg, w.msg)
		})
		for i >= 0 && used[i] {
			j := slices.IndexFunc(got[i+1:], func(g compatWant) bool {
				return g.warning == w.warning && g.path == w.path && (w.warning || g.line == w.line) && strings.Contains(g.msg, w.msg)
			})
			if j < 0 {
				i = -1
				break
			}
			i += j + 1
		}
		if i < 0 {
			t.Errorf("missing %s", w)
			continue
		}
		used[i] = true
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected %s", g)
		}
	}
	if t.Failed() && oe != nil {
		t.Logf("rendered:\n%v", oe)
	}
}

// TestObjectErrorRendering pins how errors read: one error on one line at
// the field's line; several as a header at the document's line and one
// indented line per error, top to bottom, each at its field's line. The
// webhook (no file) drops the locations.
func TestObjectErrorRendering(t *testing.T) {
	const file = "testdata/compat/msg-many-errors.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	oe, _ := compatCheck(t, file, data)
	want := file + `:5: AuthorizationPolicy app/many: 3 errors:
  ` + file + `:9: spec.selector.matchLabel: unknown field "matchLabel" (did you mean "matchLabels"?)
  ` + file + `:10: spec.action: invalid value "ALOW" (did you mean "ALLOW"? want one of ALLOW, DENY, AUDIT, CUSTOM)
  ` + file + `:14: spec.rules[0].to[0].operation.methods: must be a list, got a string`
	if diff := cmp.Diff(want, oe.Error()); diff != "" {
		t.Errorf("rendered (-want +got):\n%s", diff)
	}
	oe.Source = mesh.Source{}
	want = `AuthorizationPolicy app/many: 3 errors:
  spec.selector.matchLabel: unknown field "matchLabel" (did you mean "matchLabels"?)
  spec.action: invalid value "ALOW" (did you mean "ALLOW"? want one of ALLOW, DENY, AUDIT, CUSTOM)
  spec.rules[0].to[0].operation.methods: must be a list, got a string`
	if diff := cmp.Diff(want, oe.Error()); diff != "" {
		t.Errorf("rendered without a file (-want +got):\n%s", diff)
	}

	const one = "testdata/compat/msg-unknown-field.yaml"
	data, err = os.ReadFile(one)
	if err != nil {
		t.Fatal(err)
	}
	oe, _ = compatCheck(t, one, data)
	want = one + `:11: AuthorizationPolicy app/typo: spec.rules[0].from[0].source.principal: unknown field "principal" (did you mean "principals"?)`
	if diff := cmp.Diff(want, oe.Error()); diff != "" {
		t.Errorf("one error (-want +got):\n%s", diff)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"principals", "notPrincipals", "namespaces", "ipBlocks"}
	for in, want := range map[string]string{
		"principal": "principals", "Principals": "principals", "namespace": "namespaces", "ipblock": "ipBlocks",
		"principals": "", "hosts": "", "": "", strings.Repeat("x", 500): "",
	} {
		if got := suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"GET", "GIT", 1}, {"POST", "POTS", 1}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
