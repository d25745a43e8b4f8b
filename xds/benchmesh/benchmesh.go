package benchmesh

import (
	"fmt"
	"strings"
)

// Options size the mesh.
type Options struct {
	Services     int  // default 1000
	Namespaces   int  // services are spread round-robin (default 10)
	Replicas     int  // WorkloadEntries per subset (default 1)
	Sidecars     bool // a Sidecar egress "./*" per namespace
	GatewayHosts int  // hosts on the ingress gateway (0 = none)
}

func (o Options) defaults() Options {
	if o.Services == 0 {
		o.Services = 1000
	}
	if o.Namespaces == 0 {
		o.Namespaces = 10
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	return o
}

// Namespace returns the namespace of service i.
func (o Options) Namespace(i int) string { return fmt.Sprintf("ns%d", i%o.defaults().Namespaces) }

// Host returns the hostname of service i.
func (o Options) Host(i int) string {
	return fmt.Sprintf("svc%d.%s.svc.cluster.local", i, o.Namespace(i))
}

// WorkloadAddress is the address of replica r of subset v of service i.
func WorkloadAddress(i, v, r int) string {
	n := (i*3+v)*8 + r
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// YAML renders the whole mesh as one multi-document Istio YAML file.
func YAML(o Options) string {
	o = o.defaults()
	var b strings.Builder
	for i := range o.Services {
		Service(&b, o, i, 0)
	}
	if o.Sidecars {
		for n := range o.Namespaces {
			fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns%d}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
---
`, n)
		}
	}
	if o.GatewayHosts > 0 {
		gateway(&b, o)
	}
	return b.String()
}

// Service writes service i: ServiceEntry, 3×Replicas WorkloadEntries,
// DestinationRule with 3 subsets and a VirtualService splitting 80/15/5.
// gen varies the workload ports so a benchmark can change a service.
func Service(b *strings.Builder, o Options, i, gen int) {
	o = o.defaults()
	ns, host := o.Namespace(i), o.Host(i)
	fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: svc%[1]d}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  host: %[3]s
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 1000}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc%[1]d, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  http:
  - match: [{headers: {x-canary: {exact: "true"}}}]
    route: [{destination: {host: %[3]s, subset: v3}}]
  - route:
    - {destination: {host: %[3]s, subset: v1}, weight: 80}
    - {destination: {host: %[3]s, subset: v2}, weight: 15}
    - {destination: {host: %[3]s, subset: v3}, weight: 5}
    timeout: 5s
    retries: {attempts: 2, retryOn: "5xx,reset"}
---
`, i, ns, host)
	for v := range 3 {
		for r := range o.Replicas {
			fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc%d-v%d-%d, namespace: %s}
spec: {address: %s, labels: {app: svc%d, version: v%d}, ports: {http: %d, grpc: %d}, serviceAccount: svc%d}
---
`, i, v+1, r, ns, WorkloadAddress(i, v, r), i, v+1, 18080+gen, 19090+gen, i)
		}
	}
}

func gateway(b *strings.Builder, o Options) {
	var hosts []string
	for i := range o.GatewayHosts {
		hosts = append(hosts, fmt.Sprintf("\"*/h%d.example.com\"", i))
	}
	fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [%s]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [%s]
    tls: {mode: SIMPLE, credentialName: ingress-cert}
---
`, strings.Join(hosts, ", "), strings.Join(hosts, ", "))
	for i := range o.GatewayHosts {
		s := i % o.Services
		fmt.Fprintf(b, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: h%d, namespace: %s}
spec:
  hosts: [h%d.example.com]
  gateways: [istio-system/ingress]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: %s, port: {number: 8080}, subset: v1}}]
  - route: [{destination: {host: %s, port: {number: 8080}}}]
---
`, i, o.Namespace(s), i, o.Host(s), o.Host(s))
	}
}
