package telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
)

// Fingerprint hashes what the telemetry output of p depends on beyond
// the mesh config (which the xDS core already hashes): the applicable
// Telemetry objects and the collector services they and the defaults
// may resolve to (their namespaces and ports decide the cluster). Equal
// fingerprints mean equal telemetry output.
func Fingerprint(s *mesh.Snapshot, p *mesh.Proxy) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	l := Applicable(s, p)
	for _, c := range []*mesh.Config{l.Root, l.Namespace, l.Workload} {
		if c == nil {
			h.Write([]byte{0})
			continue
		}
		b, _ := opts.Marshal(c.Spec) // deterministic marshal of a valid message
		fmt.Fprintf(h, "%s\x00%d\x00", c.Key(), len(b))
		h.Write(b)
	}
	for _, ep := range s.Mesh().ExtensionProviders {
		svc, port := collectorOf(ep)
		if svc == "" {
			continue
		}
		c, err := LookupCollector(s, svc, port)
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%v\x00", ep.Name, c.Host, c.Cluster, err)
	}
	fmt.Fprintf(h, "%s\x00", p.Type)
	if TracingFor(s, l, Client) != nil || TracingFor(s, l, Server) != nil {
		// Spans carry the proxy's service name; hash it only when traced
		// so that untraced proxies of a namespace share their output.
		fmt.Fprintf(h, "%s\x00", serviceName(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func collectorOf(ep mesh.ExtensionProvider) (string, uint32) {
	switch {
	case ep.EnvoyHTTPALS != nil:
		return ep.EnvoyHTTPALS.Service, ep.EnvoyHTTPALS.Port
	case ep.EnvoyTCPALS != nil:
		return ep.EnvoyTCPALS.Service, ep.EnvoyTCPALS.Port
	case ep.EnvoyOtelALS != nil:
		return ep.EnvoyOtelALS.Service, ep.EnvoyOtelALS.Port
	case ep.OpenTelemetry != nil:
		return ep.OpenTelemetry.Service, ep.OpenTelemetry.Port
	}
	return "", 0
}
