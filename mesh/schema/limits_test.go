package schema

import (
	"strings"
	"testing"
)

func TestDocumentSizeBound(t *testing.T) {
	big := strings.Repeat("x", 60)
	for _, tc := range []struct {
		name, in string
		line     int // 0: accepted
	}{
		{"small documents", "a: 1\n---\nb: 2\n", 0},
		{"first too big", "a: " + big + "\n---\nb: 2\n", 1},
		{"second too big", "a: 1\n---\nb: " + big + "\n", 2},
		{"marker with content", "a: 1\n--- {b: " + big + "}\n", 2},
		{"dashes in a value are no marker", "a: 1\nb: |\n  ---\n  " + big[:20] + "\n---\nc: " + big[:30] + "\n", 0},
		{"four dashes are no marker", "a: 1\n----\nb: " + big + "\n", 1},
	} {
		err := checkDocumentSizes([]byte(tc.in), 50)
		switch {
		case tc.line == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.line != 0 && (err == nil || err.(*LimitError).Line != tc.line):
			t.Errorf("%s: %v, want refused at line %d", tc.name, err, tc.line)
		}
	}
}

func TestNodeBound(t *testing.T) {
	doc := "a: [" + strings.Repeat("1,", 100) + "1]\n"
	if err := EachDocument([]byte(doc), Limits{MaxNodes: 200}, func(*Document) error { return nil }); err != nil {
		t.Errorf("105 nodes within 200: %v", err)
	}
	err := EachDocument([]byte("b: 1\n---\n"+doc), Limits{MaxNodes: 100}, func(*Document) error { return nil })
	if !IsLimit(err) || !strings.Contains(err.Error(), "document at line 3: more than 100 YAML nodes") {
		t.Errorf("105 nodes over 100: %v", err)
	}
}

// FuzzEachDocumentLimits: whatever the input, bounded parsing never panics
// and never hands over a document beyond the bounds.
func FuzzEachDocumentLimits(f *testing.F) {
	f.Add([]byte("a: 1\n---\nb: [1, 2, 3]\n"))
	f.Add([]byte("--- {a: b}\n...\n---\n- x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = EachDocument(data, Limits{MaxNodes: 20, MaxDocumentBytes: 64}, func(d *Document) error {
			if len(d.Lines) > 20 {
				t.Fatalf("document with %d paths passed a bound of 20 nodes", len(d.Lines))
			}
			return nil
		})
	})
}
