package schema

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// walkMessage checks a generic JSON value against a message descriptor and
// records every unknown field, wrong type and bad enum with its path.
func walkMessage(md protoreflect.MessageDescriptor, v any, path string, e *errs) {
	if wellKnown(md, v, path, e) {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		e.add(path, "must be an object, got %s", jsonType(v))
		return
	}
	fields := md.Fields()
	for _, k := range sortedKeys(obj) {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		child := path + "." + k
		if fd == nil {
			e.add(child, "unknown field %q%s", k, didYouMean(k, fieldNames(fields)))
			continue
		}
		if obj[k] == nil {
			continue
		}
		walkField(fd, obj[k], child, e)
	}
}

// fieldNames lists the JSON names of a message's fields.
func fieldNames(fields protoreflect.FieldDescriptors) []string {
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, fields.Get(i).JSONName())
	}
	return out
}

func walkField(fd protoreflect.FieldDescriptor, v any, path string, e *errs) {
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			e.add(path, "must be a map, got %s", jsonType(v))
			return
		}
		for _, k := range sortedKeys(m) {
			if !walkMapKey(fd.MapKey(), k, key(path, k), e) {
				continue
			}
			walkSingle(fd.MapValue(), m[k], key(path, k), e)
		}
	case fd.IsList():
		l, ok := v.([]any)
		if !ok {
			e.add(path, "must be a list, got %s", jsonType(v))
			return
		}
		for i, item := range l {
			walkSingle(fd, item, idx(path, i), e)
		}
	default:
		walkSingle(fd, v, path, e)
	}
}

// walkMapKey checks a map key, always a string in JSON, against the key
// kind (string, bool or an integer) and reports whether it is usable.
func walkMapKey(kd protoreflect.FieldDescriptor, k, path string, e *errs) bool {
	var err error
	switch kd.Kind() {
	case protoreflect.StringKind:
		return true
	case protoreflect.BoolKind:
		_, err = strconv.ParseBool(k)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(k, 10, 32)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(k, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(k, 10, 64)
	default:
		_, err = strconv.ParseInt(k, 10, 64)
	}
	if err != nil {
		e.add(path, "invalid map key %q: must be %s", k, map[bool]string{true: "true or false", false: "an integer in range"}[kd.Kind() == protoreflect.BoolKind])
		return false
	}
	return true
}

func walkSingle(fd protoreflect.FieldDescriptor, v any, path string, e *errs) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walkMessage(fd.Message(), v, path, e)
	case protoreflect.EnumKind:
		walkEnum(fd.Enum(), v, path, e)
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			e.add(path, "must be a string, got %s", jsonType(v))
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			e.add(path, "must be a base64 string, got %s", jsonType(v))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			e.add(path, "must be a boolean, got %s", jsonType(v))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if !isNumber(v) {
			e.add(path, "must be a number, got %s", jsonType(v))
		}
	default:
		walkInt(fd.Kind(), v, path, e)
	}
}

func walkInt(k protoreflect.Kind, v any, path string, e *errs) {
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	case string:
		// protojson's canonical form of a 64-bit integer is a JSON string.
		if is64(k) {
			walkInt64String(k, n, path, e)
			return
		}
		e.add(path, "must be an integer, got %s", jsonType(v))
		return
	default:
		e.add(path, "must be an integer, got %s", jsonType(v))
		return
	}
	if f != math.Trunc(f) {
		e.add(path, "must be an integer, got %v", v)
		return
	}
	if isUnsigned(k) && f < 0 {
		e.add(path, "must not be negative, got %v", v)
		return
	}
	switch {
	case is64(k):
		if f >= 1<<64 || f < -(1<<63) {
			e.add(path, "out of range for a 64-bit integer: %v", v)
		}
	case isUnsigned(k):
		if f > math.MaxUint32 {
			e.add(path, "out of range for an unsigned 32-bit integer: %v", v)
		}
	case f > math.MaxInt32 || f < math.MinInt32:
		e.add(path, "out of range for a 32-bit integer: %v", v)
	}
}

func walkInt64String(k protoreflect.Kind, s, path string, e *errs) {
	var err error
	if isUnsigned(k) {
		_, err = strconv.ParseUint(s, 10, 64)
	} else {
		_, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil {
		e.add(path, "must be an integer, got string %q", s)
	}
}

func is64(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

func isUnsigned(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

func walkEnum(ed protoreflect.EnumDescriptor, v any, path string, e *errs) {
	if ed.FullName() == "google.protobuf.NullValue" {
		return
	}
	switch n := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(n)) == nil {
			e.add(path, "invalid value %q (%swant one of %s)", n, meant(n, enumValues(ed)), enumNames(ed))
		}
	case int64:
		if ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			e.add(path, "invalid value %d (want one of %s)", n, enumNames(ed))
		}
	default:
		e.add(path, "must be one of %s, got %s", enumNames(ed), jsonType(v))
	}
}

func enumValues(ed protoreflect.EnumDescriptor) []string {
	out := make([]string, 0, ed.Values().Len())
	for i := 0; i < ed.Values().Len(); i++ {
		out = append(out, string(ed.Values().Get(i).Name()))
	}
	return out
}

func enumNames(ed protoreflect.EnumDescriptor) string { return strings.Join(enumValues(ed), ", ") }

// wellKnown handles the well-known types whose JSON form is not an object;
// it reports whether it handled md.
func wellKnown(md protoreflect.MessageDescriptor, v any, path string, e *errs) bool {
	switch md.FullName() {
	case "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.FieldMask":
		if _, ok := v.(string); !ok {
			e.add(path, "must be a string, got %s", jsonType(v))
		}
		return true
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
		return true
	case "google.protobuf.BoolValue":
		if _, ok := v.(bool); !ok {
			e.add(path, "must be a boolean, got %s", jsonType(v))
		}
		return true
	case "google.protobuf.StringValue", "google.protobuf.BytesValue":
		if _, ok := v.(string); !ok {
			e.add(path, "must be a string, got %s", jsonType(v))
		}
		return true
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		if !isNumber(v) {
			e.add(path, "must be a number, got %s", jsonType(v))
		}
		return true
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		walkInt(md.Fields().ByName("value").Kind(), v, path, e)
		return true
	}
	return false
}

func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
