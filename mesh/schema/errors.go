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
}

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

// Error renders "file:line: Kind ns/name: path: msg; path: msg".
func (e *ObjectError) Error() string {
	var b strings.Builder
	if s := e.Source.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Key.Kind != "" {
		b.WriteString(e.Key.String())
		b.WriteString(": ")
	}
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
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

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func key(path, k string) string { return fmt.Sprintf("%s[%s]", path, k) }
