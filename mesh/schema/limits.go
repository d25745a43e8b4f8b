package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// Defaults for Limits. The byte bound is checked before parsing, because
// the YAML parser allocates every node of a document before anything can
// count them (a 8 MiB document of one-character scalars cost 1.5 GB and a
// minute and a half of CPU); the node bound is checked before the
// document is converted. Both are far above any real Istio object (a
// Kubernetes object cannot exceed 1.5 MiB in etcd; typical ones are KBs).
const (
	DefaultMaxDocumentBytes = 1 << 20
	DefaultMaxNodes         = 100_000
)

// Limits bounds what one document of a YAML stream may cost to parse.
// Zero fields take the defaults.
type Limits struct {
	MaxDocumentBytes int
	MaxNodes         int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDocumentBytes <= 0 {
		l.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = DefaultMaxNodes
	}
	return l
}

// LimitError is a document refused by Limits, before it was converted.
type LimitError struct {
	Line   int // where the document starts
	Reason string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("yaml: document at line %d: %s", e.Line, e.Reason)
}

// IsLimit reports whether err is a LimitError.
func IsLimit(err error) bool {
	var e *LimitError
	return errors.As(err, &e)
}

// EachDocument parses a multi-document YAML (or JSON) stream one document
// at a time and calls fn with each non-empty one, so only one document is
// held in parsed form at once. It stops at the first error, from the
// parser, from lim or from fn.
func EachDocument(data []byte, lim Limits, fn func(*Document) error) error {
	lim = lim.withDefaults()
	if err := checkDocumentSizes(data, lim.MaxDocumentBytes); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 0; ; n++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("yaml: %w", err)
		}
		if n >= maxDocuments {
			return fmt.Errorf("yaml: more than %d documents", maxDocuments)
		}
		if c := countNodes(&node, lim.MaxNodes); c > lim.MaxNodes {
			line := node.Line
			if len(node.Content) > 0 {
				line = node.Content[0].Line
			}
			return &LimitError{Line: line, Reason: fmt.Sprintf("more than %d YAML nodes", lim.MaxNodes)}
		}
		d, err := newDocument(&node)
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

// checkDocumentSizes finds the documents of data by their "---" markers
// (a line starting with "---" and then a space, tab or line end can only
// be a document marker in YAML) and refuses one larger than maxBytes.
func checkDocumentSizes(data []byte, maxBytes int) error {
	start, startLine, line := 0, 1, 1
	for i := 0; i <= len(data); i++ {
		atLineStart := i == 0 || data[i-1] == '\n'
		if i < len(data) && !(atLineStart && isDocMarker(data[i:])) {
			if data[i] == '\n' {
				line++
			}
			continue
		}
		if i-start > maxBytes {
			return &LimitError{Line: startLine, Reason: fmt.Sprintf("larger than %d bytes", maxBytes)}
		}
		start, startLine = i, line
		if i < len(data) && data[i] == '\n' {
			line++
		}
	}
	return nil
}

func isDocMarker(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("---")) {
		return false
	}
	return len(b) == 3 || b[3] == ' ' || b[3] == '\t' || b[3] == '\n' || b[3] == '\r'
}

// countNodes counts the nodes under n, stopping once past limit. It uses
// an explicit stack: the parser allows deeper nesting than Go recursion
// should be trusted with.
func countNodes(n *yaml.Node, limit int) int {
	count := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 && count <= limit {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		stack = append(stack, top.Content...)
	}
	return count
}
