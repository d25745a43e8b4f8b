package webhook_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/webhook"
)

// The webhook must say exactly what the file source says about every
// invalid object of package schema's corpora (invalid and compat), after the object has been
// through JSON as the API server sends it.
func TestValidationMatchesFileSource(t *testing.T) {
	files, err := filepath.Glob("../mesh/schema/testdata/invalid/*.yaml")
	compat, _ := filepath.Glob("../mesh/schema/testdata/compat/*.yaml")
	files = append(files, compat...)
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.yaml"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := file.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			var fromFile []string
			for _, r := range res.Rejected {
				fromFile = append(fromFile, stripSource(r.Err.Error()))
			}
			docs, err := schema.SplitYAML(data)
			if err != nil {
				t.Fatal(err)
			}
			var fromWebhook []string
			for _, d := range docs {
				b, err := json.Marshal(d.Value)
				if err != nil {
					t.Fatal(err)
				}
				var obj map[string]any
				if err := utiljson.Unmarshal(b, &obj); err != nil {
					t.Fatal(err)
				}
				if _, err := webhook.ValidateObject(obj, ""); err != nil {
					fromWebhook = append(fromWebhook, sortViolations(err.Error()))
				}
			}
			sort.Strings(fromFile)
			sort.Strings(fromWebhook)
			if len(fromFile) == 0 {
				t.Skip("the file source accepts this file (warnings only)")
			}
			if diff := cmp.Diff(fromFile, fromWebhook); diff != "" {
				t.Errorf("webhook and file source disagree (-file +webhook):\n%s", diff)
			}
		})
	}
}

// fileLocation is the "file:line: " a file-source error puts before the
// object and before each of its violations.
var fileLocation = regexp.MustCompile(`[^\s]*\.yaml:\d+: `)

// stripSource drops the file locations of a file-source error and puts
// the violations of a multi-error object in one order: the file source
// lists them top to bottom by line, which the webhook (no lines) cannot.
func stripSource(s string) string {
	return sortViolations(fileLocation.ReplaceAllString(s, ""))
}

func sortViolations(s string) string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines[1:])
	return strings.Join(lines, "\n")
}
