package schema

import (
	"fmt"
	"strings"

	"github.com/wardmesh/ward/mesh"
)

// FieldError is one violation at a field path such as
// "spec.rules[0].to[1].operation.methods[0]".
type FieldError struct {
	Path    string
	Message string
	Line    int // source line of the field, 0 when unknown
	// Code classifies a warning for analyzers (CodeStricter, ...); empty
	// for errors and for Istio's own warnings.
	Code string
}

// Warning classes, for analyzers that report them under their own codes.
const (
	// CodeMethodTypo: an AuthorizationPolicy method that looks like a typo
	// of a standard HTTP method, so it probably never matches.
	CodeMethodTypo = "MethodTypo"
	// CodeStricter: a check Ward makes beyond Istio's validation; Istio
	// accepts the object, and so does Ward, with this warning.
	CodeStricter = "StricterThanIstio"
	// CodeNotImplemented: a field Ward accepts but does not act on yet
	// (never a security field: those are rejected instead).
	CodeNotImplemented = "NotImplemented"
)

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ObjectError reports every violation of one object.
type ObjectError struct {
	Key    mesh.Key
	Source mesh.Source
	Errors []FieldError
}

// Error renders one violation on one line, at the field's own line:
//
//	file:12: Kind ns/name: path: msg
//
// and several as a header at the document's line followed by one
// indented line per violation, each at its field's line:
//
//	file:3: Kind ns/name: 2 errors:
//	  file:12: path: msg
//	  file:15: path: msg
func (e *ObjectError) Error() string {
	var b strings.Builder
	if len(e.Errors) == 1 {
		e.writeHeader(&b, e.SourceOf(e.Errors[0]))
		b.WriteString(e.Errors[0].Error())
		return b.String()
	}
	e.writeHeader(&b, e.Source)
	fmt.Fprintf(&b, "%d errors:", len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		if fe.Line > 0 && e.Source.File != "" {
			b.WriteString(e.SourceOf(fe).String())
			b.WriteString(": ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

func (e *ObjectError) writeHeader(b *strings.Builder, src mesh.Source) {
	if s := src.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Key.Kind != "" {
		b.WriteString(e.Key.String())
		b.WriteString(": ")
	}
}

// SourceOf is where a violation is: its field's own line when known,
// else the object's.
func (e *ObjectError) SourceOf(fe FieldError) mesh.Source {
	src := e.Source
	if fe.Line > 0 {
		src.Line = fe.Line
	}
	return src
}

// errs accumulates field errors (and, separately, Istio's warnings, which
// never reject an object) under a path prefix.
type errs struct{ list, warns []FieldError }

func (e *errs) add(path, format string, args ...any) {
	e.list = append(e.list, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (e *errs) warn(path, format string, args ...any) {
	e.warns = append(e.warns, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (e *errs) warnCode(code, path, format string, args ...any) {
	e.warns = append(e.warns, FieldError{Path: path, Message: fmt.Sprintf(format, args...), Code: code})
}

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func key(path, k string) string { return fmt.Sprintf("%s[%s]", path, k) }
