package authn

import (
	"errors"
	"flag"
	goldenfile "github.com/wardmesh/ward/internal/golden"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// validateDeep runs ValidateAll on m and on every message packed in an Any
// anywhere inside it, recursively.
func validateDeep(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	var errs []error
	walkMessages(m.ProtoReflect(), func(msg protoreflect.Message) {
		a, ok := msg.Interface().(*anypb.Any)
		if !ok {
			return
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, err)
			return
		}
		if err := validateDeep(inner); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

func walkMessages(m protoreflect.Message, fn func(protoreflect.Message)) {
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkMessages(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkMessages(mv.Message(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkMessages(v.Message(), fn)
		}
		return true
	})
}

func mustValidate(t *testing.T, m proto.Message) {
	t.Helper()
	if err := validateDeep(m); err != nil {
		t.Fatalf("%T fails validation: %v", m, err)
	}
}

// golden compares got with testdata/<name>.golden.yaml (-update rewrites it).
func golden(t *testing.T, name string, got proto.Message) {
	t.Helper()
	goldenfile.Proto(t, name, got, *update)
}
