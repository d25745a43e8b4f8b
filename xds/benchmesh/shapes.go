package benchmesh

import (
	"fmt"
	"strings"
)

// Shapes are the config shapes of Istio's pilot benchmarks (http,
// virtualservice, serviceentry-workloadentry, gateways), rendered here by
// Ward's own generator so Ward's benchmarks need no Istio files. Each
// renders n of its unit; ShapeProxy says which proxy the benchmark
// generates for.
var Shapes = []string{"http", "virtualservice", "serviceentry-workloadentry", "gateways"}

// ShapeProxy is the kind of proxy a shape's benchmark generates config
// for: "router" for gateways, else "sidecar".
func ShapeProxy(shape string) string {
	if shape == "gateways" {
		return "router"
	}
	return "sidecar"
}

// Shape renders n units of shape as Istio YAML, all in namespace
// "default" (the benchmark proxy's namespace) except the gateways, which
// live in istio-system:
//
//   - http: n ServiceEntries with an HTTP port and one WorkloadEntry-less
//     static endpoint each (Kubernetes services without routing rules);
//   - virtualservice: n services, each with a VirtualService of a header
//     match, a prefix match with a rewrite, and a weighted default route;
//   - serviceentry-workloadentry: n ServiceEntries selecting three
//     WorkloadEntries each (VMs);
//   - gateways: one Gateway with n HTTPS servers (own host and
//     credentialName each) and n VirtualServices, one bound to each host.
func Shape(shape string, n int) (string, error) {
	var b strings.Builder
	switch shape {
	case "http":
		for i := range n {
			shapeService(&b, i, true)
		}
	case "virtualservice":
		for i := range n {
			shapeService(&b, i, true)
			fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs%[1]d, namespace: default}
spec:
  hosts: [s%[1]d.default.svc.cluster.local]
  http:
  - match: [{headers: {end-user: {exact: "jason"}}}]
    route: [{destination: {host: s%[1]d.default.svc.cluster.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /legacy}}]
    rewrite: {uri: /v2}
    route: [{destination: {host: s%[1]d.default.svc.cluster.local, port: {number: 80}}}]
  - route:
    - {destination: {host: s%[1]d.default.svc.cluster.local, port: {number: 80}}, weight: 90}
    - {destination: {host: s%[2]d.default.svc.cluster.local, port: {number: 80}}, weight: 10}
    timeout: 10s
---
`, i, (i+1)%n)
		}
	case "serviceentry-workloadentry":
		for i := range n {
			shapeService(&b, i, false)
			for r := range 3 {
				fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm%d-%d, namespace: default}
spec: {address: %s, labels: {app: vm%d}, serviceAccount: vm%d}
---
`, i, r, WorkloadAddress(i, r, 1), i, i)
			}
		}
	case "gateways":
		shapeGateway(&b, n)
	default:
		return "", fmt.Errorf("benchmesh: unknown shape %q (want one of %s)", shape, strings.Join(Shapes, ", "))
	}
	return b.String(), nil
}

// shapeService writes service i: a static HTTP ServiceEntry with its own
// endpoint (http) or one selecting WorkloadEntries labelled app: vm<i>.
func shapeService(b *strings.Builder, i int, static bool) {
	if static {
		fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s%[1]d, namespace: default}
spec:
  hosts: [s%[1]d.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: %[2]s}]
---
`, i, WorkloadAddress(i, 0, 0))
		return
	}
	fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm%[1]d, namespace: default}
spec:
  hosts: [vm%[1]d.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 443, name: tls, protocol: TLS}]
  workloadSelector: {labels: {app: vm%[1]d}}
---
`, i)
}

// shapeGateway writes one ingress Gateway with n HTTPS servers and the n
// VirtualServices bound to it (one backend service for all).
func shapeGateway(b *strings.Builder, n int) {
	shapeService(b, 0, true)
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
`)
	for i := range n {
		fmt.Fprintf(b, `  - port: {number: 443, name: https-%[1]d, protocol: HTTPS}
    hosts: [h%[1]d.example.com]
    tls: {mode: SIMPLE, credentialName: cert-%[1]d}
`, i)
	}
	b.WriteString("---\n")
	for i := range n {
		fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-vs%[1]d, namespace: istio-system}
spec:
  hosts: [h%[1]d.example.com]
  gateways: [ingress]
  http:
  - route: [{destination: {host: s0.default.svc.cluster.local, port: {number: 80}}}]
---
`, i)
	}
}
