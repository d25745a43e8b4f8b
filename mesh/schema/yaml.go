package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Document is one YAML document of a stream: its generic value (maps,
// slices, strings, float64/int64, bools, nil) and the line of every field
// path, so errors can point at the line that holds a mistake.
type Document struct {
	Value any
	Line  int            // line where the document starts
	Lines map[string]int // field path ("spec.rules[0]") → line
}

// LineOf returns the line of the longest known prefix of path. Map
// entries may be named either way: "spec.portLevelMtls[8080]" (as errors
// name them) finds the line recorded for "spec.portLevelMtls.8080".
func (d *Document) LineOf(path string) int {
	for p := path; p != ""; p = parent(p) {
		for _, form := range []string{p, mapKeyForm(p), snake(p), mapKeyForm(snake(p))} {
			if l, ok := d.Lines[form]; ok {
				return l
			}
		}
	}
	return d.Line
}

// snake rewrites the field names of p (not map keys in brackets) from
// their JSON (camelCase) names to their proto (snake_case) names, which
// protojson also accepts: errors name "spec.jwtRules[0].jwksUri" for a
// document that wrote "jwt_rules" and "jwks_uri".
func snake(p string) string {
	var b strings.Builder
	inKey := false
	for _, r := range p {
		switch {
		case r == '[':
			inKey = true
		case r == ']':
			inKey = false
		case !inKey && r >= 'A' && r <= 'Z':
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mapKeyForm rewrites a trailing "[key]" to ".key".
func mapKeyForm(p string) string {
	if !strings.HasSuffix(p, "]") {
		return p
	}
	open := strings.LastIndexByte(p, '[')
	if open < 0 {
		return p
	}
	return p[:open] + "." + p[open+1:len(p)-1]
}

func parent(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return p[:i]
		}
	}
	return ""
}

// maxDocuments bounds how many documents one stream may hold.
const maxDocuments = 10000

// SplitYAML parses a multi-document YAML (or JSON) stream. Empty documents
// are skipped.
func SplitYAML(data []byte) ([]*Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("yaml: %w", err)
		}
		if len(docs) >= maxDocuments {
			return docs, fmt.Errorf("yaml: more than %d documents", maxDocuments)
		}
		d := &Document{Lines: map[string]int{}}
		if len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		d.Line = root.Line
		v, err := d.convert(root, "", 0)
		if err != nil {
			return docs, fmt.Errorf("yaml: line %d: %w", root.Line, err)
		}
		if v == nil {
			continue
		}
		d.Value = v
		docs = append(docs, d)
	}
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 100

func (d *Document) convert(n *yaml.Node, path string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	if path != "" {
		d.Lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not supported", n.Line)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.convert(n.Content[0], path, depth+1)
	case yaml.MappingNode:
		return d.convertMap(n, path, depth)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := d.convert(c, idx(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	default:
		return scalar(n)
	}
}

func (d *Document) convertMap(n *yaml.Node, path string, depth int) (any, error) {
	out := make(map[string]any, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: map keys must be scalars", k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("line %d: %s: duplicate key %q", k.Line, orRoot(path), k.Value)
		}
		child := k.Value
		if path != "" {
			child = path + "." + k.Value
		}
		cv, err := d.convert(v, child, depth+1)
		if err != nil {
			return nil, err
		}
		d.Lines[child] = k.Line
		out[k.Value] = cv
	}
	return out, nil
}

func orRoot(p string) string {
	if p == "" {
		return "document"
	}
	return p
}

// scalar decodes a scalar node by its resolved tag, keeping integers exact.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return i, nil
		}
		var f float64
		err := n.Decode(&f)
		return f, err
	case "!!float":
		var f float64
		err := n.Decode(&f)
		return f, err
	default:
		return n.Value, nil
	}
}
