package deploy

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

//go:embed all:helm/ward
var chart embed.FS

const chartDir = "helm/ward"

// DefaultNamespace is the namespace the kustomize base installs into.
const DefaultNamespace = "ward-system"

// Files are the templates in the order they are applied: what another
// object needs comes first, the webhooks (which would intercept pod and
// config writes) last.
var Files = []string{"namespace.yaml", "crds.yaml", "rbac.yaml", "mesh-config.yaml", "service.yaml", "deployment.yaml", "ambient.yaml", "webhooks.yaml"}

func chartFile(name string) []byte {
	b, err := chart.ReadFile(path.Join(chartDir, name))
	if err != nil {
		panic(err) // embedded
	}
	return b
}

// Chart returns the embedded Helm chart (helm/ward) as a file system.
func Chart() fs.FS {
	sub, err := fs.Sub(chart, chartDir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Manifest is one rendered template.
type Manifest struct {
	File string // the template's base name, e.g. "deployment.yaml"
	YAML []byte
}

// Render renders every template with v into namespace ns, in Files order.
// A template that renders to nothing (e.g. namespace.yaml with
// namespace.create false) is left out.
func Render(v Values, ns string) ([]Manifest, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	t, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	data, err := renderData(v, ns)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, f := range Files {
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, templateName(f), data); err != nil {
			return nil, fmt.Errorf("render %s: %w", f, err)
		}
		if strings.TrimSpace(stripComments(buf.String())) == "" {
			continue
		}
		out = append(out, Manifest{File: f, YAML: tidy(buf.Bytes())})
	}
	return out, nil
}

func templateName(f string) string { return "ward/templates/" + f }

// parseTemplates parses every template of the chart into one set, as
// Helm does, so that _helpers.tpl's definitions are visible to all.
func parseTemplates() (*template.Template, error) {
	t := template.New("ward").Funcs(Funcs()).Option("missingkey=error")
	entries, err := fs.ReadDir(chart, chartDir+"/templates")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b := chartFile("templates/" + e.Name())
		if _, err := t.New(templateName(e.Name())).Parse(string(b)); err != nil {
			return nil, fmt.Errorf("parse %s: %w", e.Name(), err)
		}
	}
	return t, nil
}

// renderData is what Helm hands a template: .Values (the values as plain
// maps, through JSON as Helm reads values.yaml), .Release and .Chart.
func renderData(v Values, ns string) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var values map[string]any
	if err := json.Unmarshal(b, &values); err != nil {
		return nil, err
	}
	var meta struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartFile("Chart.yaml"), &meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	return map[string]any{
		"Values":  values,
		"Release": map[string]any{"Name": "ward", "Namespace": ns, "Service": "Helm"},
		"Chart":   map[string]any{"Name": meta.Name, "Version": meta.Version, "AppVersion": meta.AppVersion},
	}, nil
}

// Funcs are the template functions the chart may use beyond text/template's
// own, with the semantics of Helm's (sprig's) functions of the same names.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"indent": indent,
		"nindent": func(n int, s string) string {
			return "\n" + indent(n, s)
		},
		"quote": func(xs ...any) string {
			out := make([]string, 0, len(xs))
			for _, x := range xs {
				if x != nil {
					out = append(out, strconv.Quote(fmt.Sprint(x)))
				}
			}
			return strings.Join(out, " ")
		},
		"int": toInt,
		"fail": func(msg string) (string, error) {
			return "", errors.New(msg)
		},
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// toInt converts like sprig's int (cast.ToInt): numbers truncate, numeric
// strings parse, anything else is 0.
func toInt(v any) int {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return int(rv.Float())
	case reflect.String:
		i, _ := strconv.Atoi(rv.String())
		return i
	case reflect.Bool:
		if rv.Bool() {
			return 1
		}
	}
	return 0
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(s string) string { return commentLine.ReplaceAllString(s, "") }

// tidy trims the blank lines template actions leave at the start and end.
func tidy(b []byte) []byte {
	return append(bytes.TrimSpace(b), '\n')
}

// Objects parses rendered manifests into objects, in order, skipping empty
// documents.
func Objects(ms []Manifest) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, m := range ms {
		objs, err := ParseObjects(m.YAML)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.File, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// ParseObjects splits a multi-document YAML stream into objects.
func ParseObjects(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, doc := range docSep.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d: no kind or name", i)
		}
		out = append(out, u)
	}
	return out, nil
}

// YAML joins manifests into one stream, each file's documents after a
// "# Source:" line as Helm prints them.
func YAML(ms []Manifest) []byte {
	var buf bytes.Buffer
	for _, m := range ms {
		fmt.Fprintf(&buf, "---\n# Source: ward/templates/%s\n", m.File)
		buf.Write(bytes.TrimPrefix(m.YAML, []byte("---\n")))
	}
	return buf.Bytes()
}

func joinErrs(errs []string) string { return strings.Join(errs, "; ") }
