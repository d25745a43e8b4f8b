package schema

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// normalizeDurations rewrites every google.protobuf.Duration value of v in
// place from Go's duration syntax ("500ms", "1m30s"), which Istio YAML uses,
// to the seconds form protojson requires ("0.5s"). Values that do not parse
// are left alone for protojson to reject.
func normalizeDurations(md protoreflect.MessageDescriptor, v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	fields := md.Fields()
	for k, val := range obj {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil || fd.Message() == nil {
			continue
		}
		sub := fd.Message()
		if fd.IsMap() {
			sub = fd.MapValue().Message()
			if sub == nil {
				continue
			}
		}
		switch x := val.(type) {
		case []any:
			for i := range x {
				x[i] = normalizeOne(sub, x[i])
			}
		case map[string]any:
			if fd.IsMap() {
				for mk := range x {
					x[mk] = normalizeOne(sub, x[mk])
				}
			} else {
				obj[k] = normalizeOne(sub, x)
			}
		default:
			obj[k] = normalizeOne(sub, val)
		}
	}
}

func normalizeOne(md protoreflect.MessageDescriptor, v any) any {
	if md.FullName() != "google.protobuf.Duration" {
		normalizeDurations(md, v)
		return v
	}
	s, ok := v.(string)
	if !ok {
		return v
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return v
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
