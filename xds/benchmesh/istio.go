package benchmesh

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// IstioCase is one of Istio's own pilot benchmark templates
// (pilot/pkg/xds/testdata/benchmarks/<Name>.yaml in istio.io/istio) at
// the size Istio's bench_test.go renders it. The templates are read from
// the module cache at run time, never copied into this repository.
type IstioCase struct {
	Name      string
	Services  int
	Instances int
}

// IstioCases are the templates Ward is compared on, at Istio's sizes.
var IstioCases = []IstioCase{
	{"gateways", 1000, 0},
	{"http", 100, 0},
	{"virtualservice", 100, 0},
	{"serviceentry-workloadentry", 100, 1000},
}

// Router says whether Istio benchmarks the case with a gateway proxy.
func (c IstioCase) Router() bool { return c.Name == "gateways" }

// RenderIstio executes the text of c's template with the sprig functions
// it uses (until, div, mod) implemented here, and puts objects without a
// namespace in "default", as Istio's harness does.
func RenderIstio(text string, c IstioCase) (string, error) {
	funcs := template.FuncMap{
		"until": func(n int) []int {
			r := make([]int, n)
			for i := range r {
				r[i] = i
			}
			return r
		},
		"div": func(a, b int) int { return a / b },
		"mod": func(a, b int) int { return a % b },
	}
	t, err := template.New(c.Name).Funcs(funcs).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse istio template %s: %w", c.Name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, c); err != nil {
		return "", fmt.Errorf("render istio template %s: %w", c.Name, err)
	}
	docs := strings.Split(buf.String(), "\n---")
	for i, d := range docs {
		if strings.Contains(d, "kind:") && !strings.Contains(d, "  namespace:") {
			docs[i] = strings.Replace(d, "metadata:\n", "metadata:\n  namespace: default\n", 1)
		}
	}
	return strings.Join(docs, "\n---"), nil
}

// IstioPodIP is the address of pod i of Istio's benchmark workload: pod 0
// is Istio's benchmark proxy (1.1.1.1, the endpoint the templates
// declare), the others further pods of it at their own addresses.
func IstioPodIP(i int) string {
	if i == 0 {
		return "1.1.1.1"
	}
	return fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
}

// IstioPods is YAML making the n pods of IstioPodIP endpoints of one
// more service, bench-pods (HTTP 8080), through a WorkloadEntry each
// labelled app: bench-pods: appended to a template, every pod then has
// its own inbound side, as pods of a service do.
func IstioPods(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench-pods
  namespace: default
spec:
  hosts:
  - bench-pods.default.svc.cluster.local
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  resolution: STATIC
  location: MESH_INTERNAL
  workloadSelector:
    labels:
      app: bench-pods
`)
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: pod-%d
  namespace: default
spec:
  address: %s
  labels:
    app: bench-pods
    istio.io/benchmark: "true"
`, i, IstioPodIP(i))
	}
	return b.String()
}
