package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardmesh/ward/mesh"
)

// Ward's own config group and the MeshConfig kind.
const (
	GroupWard      = "config.wardmesh.io"
	KindMeshConfig = "MeshConfig"
)

// Decoded is the result of decoding one document: exactly one of Config and
// MeshConfig is set, or Ignored says why the document is not Ward's.
type Decoded struct {
	Config     *mesh.Config
	MeshConfig *mesh.MeshConfig
	Ignored    string // non-empty for objects of groups Ward does not read
}

// Decode turns one document into a config object, strictly: unknown
// top-level, metadata or spec fields, bad enum values and wrong JSON types
// are errors with field paths. It does not apply semantic validation; call
// Validate for that. The error, when not nil, is an *ObjectError.
func Decode(doc *Document, src mesh.Source) (*Decoded, error) {
	obj, ok := doc.Value.(map[string]any)
	if !ok {
		return nil, objErr(doc, src, mesh.Key{}, FieldError{Message: "document is not a YAML mapping"})
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group, version, _ := strings.Cut(apiVersion, "/")
	if apiVersion == "" || kind == "" {
		return nil, objErr(doc, src, mesh.Key{}, FieldError{Path: "apiVersion", Message: "apiVersion and kind are required"})
	}
	if group == GroupWard && kind == KindMeshConfig {
		return decodeMeshConfig(doc, src, obj, version)
	}
	info, ok := mesh.LookupKind(group, version, kind)
	if !ok {
		if strings.HasSuffix(group, ".istio.io") || group == GroupWard {
			return nil, objErr(doc, src, objectKey(obj, kind), unsupportedAPI(group, version, kind))
		}
		return &Decoded{Ignored: fmt.Sprintf("%s %s is not an Istio object", apiVersion, kind)}, nil
	}
	return decodeIstio(doc, src, obj, info, apiVersion)
}

// objectKey names an object from its raw metadata, for errors raised
// before it is decoded.
func objectKey(obj map[string]any, kind string) mesh.Key {
	md, _ := obj["metadata"].(map[string]any)
	k := mesh.Key{Kind: mesh.Kind(kind)}
	k.Name, _ = md["name"].(string)
	k.Namespace, _ = md["namespace"].(string)
	if k.Namespace == "" && k.Name != "" {
		k.Namespace = "default"
	}
	return k
}

// unsupportedAPI explains an apiVersion/kind pair Ward does not read in
// an Istio (or Ward) group: the versions it reads for a known kind, or
// the kinds it reads in the group, with the likely intended one.
func unsupportedAPI(group, version, kind string) FieldError {
	if info, ok := mesh.Kind(kind).Info(); ok {
		path := "apiVersion"
		if info.Group == group {
			return FieldError{Path: path, Message: fmt.Sprintf("%s/%s is not a supported version of %s (supported: %s)", group, version, kind, strings.Join(apiVersions(info), ", "))}
		}
		return FieldError{Path: path, Message: fmt.Sprintf("%s is not in group %s (supported: %s)", kind, group, strings.Join(apiVersions(info), ", "))}
	}
	var names []string
	for _, k := range mesh.Kinds() {
		names = append(names, string(k))
	}
	if group == GroupWard {
		names = append(names, KindMeshConfig)
	}
	var inGroup []string
	for _, k := range mesh.Kinds() {
		if info, _ := k.Info(); info.Group == group {
			inGroup = append(inGroup, string(k))
		}
	}
	if group == GroupWard {
		inGroup = append(inGroup, KindMeshConfig)
	}
	msg := fmt.Sprintf("kind %q of %s/%s is not supported by Ward%s", kind, group, version, didYouMean(kind, names))
	if len(inGroup) > 0 {
		msg += fmt.Sprintf("; supported kinds in %s: %s", group, strings.Join(inGroup, ", "))
	}
	return FieldError{Path: "kind", Message: msg}
}

// apiVersions lists a kind's accepted apiVersions, newest first.
func apiVersions(info mesh.KindInfo) []string {
	out := make([]string, 0, len(info.Versions))
	for _, v := range info.Versions {
		out = append(out, info.Group+"/"+v)
	}
	return out
}

func decodeIstio(doc *Document, src mesh.Source, obj map[string]any, info mesh.KindInfo, apiVersion string) (*Decoded, error) {
	var e errs
	checkTopLevel(obj, &e)
	meta := decodeMeta(obj["metadata"], &e)
	meta.Kind, meta.APIVersion, meta.Source = info.Kind, apiVersion, src
	key := mesh.Key{Kind: info.Kind, Namespace: meta.Namespace, Name: meta.Name}
	spec := info.NewSpec()
	raw, hasSpec := obj["spec"]
	if hasSpec && raw != nil {
		before := len(e.list)
		walkMessage(spec.ProtoReflect().Descriptor(), raw, "spec", &e)
		if len(e.list) == before {
			checkRaw(info.Kind, raw, &e)
		}
		if len(e.list) == before {
			normalizeDurations(spec.ProtoReflect().Descriptor(), raw)
			b, err := json.Marshal(raw)
			if err == nil {
				err = protojson.UnmarshalOptions{}.Unmarshal(b, spec)
			}
			if err != nil {
				e.add("spec", "%v", err)
			}
		}
	}
	if len(e.list) > 0 {
		return nil, objErr(doc, src, key, e.list...)
	}
	return &Decoded{Config: &mesh.Config{Meta: meta, Spec: spec}}, nil
}

var topLevel = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "spec": true, "status": true}

func checkTopLevel(obj map[string]any, e *errs) {
	for _, k := range sortedKeys(obj) {
		if !topLevel[k] {
			e.add(k, "unknown field %q%s", k, didYouMean(k, sortedStrKeys(topLevel)))
		}
	}
}

var metaFields = map[string]bool{
	"name": true, "namespace": true, "labels": true, "annotations": true, "creationTimestamp": true,
	"resourceVersion": true, "uid": true, "generation": true, "managedFields": true,
	"ownerReferences": true, "finalizers": true, "generateName": true, "deletionTimestamp": true,
	"deletionGracePeriodSeconds": true, "selfLink": true,
}

func decodeMeta(v any, e *errs) mesh.Meta {
	var m mesh.Meta
	md, ok := v.(map[string]any)
	if !ok {
		e.add("metadata", "required")
		return m
	}
	for _, k := range sortedKeys(md) {
		if !metaFields[k] {
			e.add("metadata."+k, "unknown field %q%s", k, didYouMean(k, sortedStrKeys(metaFields)))
		}
	}
	m.Name, _ = md["name"].(string)
	m.Namespace, _ = md["namespace"].(string)
	if m.Namespace == "" {
		m.Namespace = "default"
	}
	m.Labels = stringMap(md["labels"], "metadata.labels", e)
	m.Annotations = stringMap(md["annotations"], "metadata.annotations", e)
	m.ResourceVersion, _ = md["resourceVersion"].(string)
	if ts, ok := md["creationTimestamp"].(string); ok && ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			e.add("metadata.creationTimestamp", "must be RFC 3339: %v", err)
		}
		m.CreationTimestamp = t
	}
	return m
}

func stringMap(v any, path string, e *errs) map[string]string {
	if v == nil {
		return nil
	}
	in, ok := v.(map[string]any)
	if !ok {
		e.add(path, "must be a map of strings")
		return nil
	}
	out := make(map[string]string, len(in))
	for k, val := range in {
		s, ok := val.(string)
		if !ok {
			e.add(key(path, k), "must be a string")
			continue
		}
		out[k] = s
	}
	return out
}

func decodeMeshConfig(doc *Document, src mesh.Source, obj map[string]any, version string) (*Decoded, error) {
	var e errs
	key := mesh.Key{Kind: KindMeshConfig}
	if version != "v1alpha1" {
		e.add("apiVersion", "%s/%s is not a supported version of %s (supported: %s/v1alpha1)", GroupWard, version, KindMeshConfig, GroupWard)
	}
	checkTopLevel(obj, &e)
	meta := decodeMeta(obj["metadata"], &e)
	key.Namespace, key.Name = meta.Namespace, meta.Name
	var mc mesh.MeshConfig
	if raw, ok := obj["spec"]; ok && raw != nil {
		b, _ := json.Marshal(raw)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&mc); err != nil {
			e.add("spec", "%v", err)
		}
	}
	for _, err := range mc.Validate() {
		e.add("", "%v", err)
	}
	if len(e.list) > 0 {
		return nil, objErr(doc, src, key, e.list...)
	}
	return &Decoded{MeshConfig: &mc}, nil
}

// objErr builds an ObjectError, filling each field's line from the
// document.
func objErr(doc *Document, src mesh.Source, key mesh.Key, fes ...FieldError) *ObjectError {
	for i := range fes {
		if fes[i].Line == 0 {
			fes[i].Line = doc.LineOf(fes[i].Path)
		}
	}
	// Top to bottom, as the reader meets them in the file.
	sort.SliceStable(fes, func(i, j int) bool { return fes[i].Line < fes[j].Line })
	if src.Line == 0 {
		src.Line = doc.Line
	}
	return &ObjectError{Key: key, Source: src, Errors: fes}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
