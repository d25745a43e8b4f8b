package telemetry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wardmesh/ward/mesh"
)

// Collector is where a provider's data goes: the service's hostname (the
// gRPC authority) and the proxy's outbound cluster for it.
type Collector struct {
	Host    string
	Cluster string
}

// LookupCollector resolves a provider's service and port as Istio does:
// "namespace/hostname" names the service of that namespace, a bare
// hostname must be declared in exactly one namespace. The service must
// declare the port. The cluster is the ordinary outbound cluster
// "outbound|<port>||<host>" every proxy that sees the service has (Envoy
// resolves access-log and tracer clusters lazily: a proxy whose Sidecar
// hides the collector drops the data, its listeners still load).
func LookupCollector(s *mesh.Snapshot, service string, port uint32) (Collector, error) {
	ns, host, scoped := strings.Cut(service, "/")
	if !scoped {
		host, ns = service, ""
	}
	var found []*mesh.Service
	for _, svc := range s.ServicesByHost(host) {
		if ns == "" || svc.Namespace == ns {
			found = append(found, svc)
		}
	}
	switch {
	case len(found) == 0:
		return Collector{}, fmt.Errorf("service %q is not in the service registry", service)
	case len(found) > 1 && distinctNamespaces(found) > 1:
		return Collector{}, fmt.Errorf("service %q is declared in namespaces %s: name one as <namespace>/<hostname>", service, strings.Join(namespaces(found), ", "))
	}
	if _, ok := found[0].PortByNumber(port); !ok {
		return Collector{}, fmt.Errorf("service %q has no port %d", service, port)
	}
	return Collector{Host: host, Cluster: fmt.Sprintf("outbound|%d||%s", port, host)}, nil
}

func namespaces(svcs []*mesh.Service) []string {
	set := map[string]bool{}
	for _, s := range svcs {
		set[s.Namespace] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func distinctNamespaces(svcs []*mesh.Service) int { return len(namespaces(svcs)) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
