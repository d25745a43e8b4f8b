package translate

import (
	"crypto/sha256"
	"encoding/hex"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/wardmesh/ward/mesh"
)

// EndpointPart is one visible service's endpoint sets for a proxy and the
// key they can be cached under: equal keys give equal ClusterLoadAssignments
// (across snapshots too), so a server regenerates only the services whose
// key changed.
type EndpointPart struct {
	Service *mesh.Service
	Key     string
}

// basePart is an EndpointPart before the proxy's own contribution: whether
// the output also depends on the proxy's locality or labels (locality load
// balancing, failoverPriority).
type basePart struct {
	EndpointPart
	locality bool
	labels   []string
}

type baseParts struct {
	parts   []basePart
	variant bool   // some part depends on the proxy
	print   string // hash of every base key
}

// EndpointParts lists the proxy's endpoint parts in Scope.Services order.
// The key of a part is the service's content fingerprint (members,
// routing config), the DestinationRule it resolves to from the proxy's
// namespace, the proxy class (Envoy or gRPC) and, where locality load
// balancing makes the output depend on them, the proxy's locality and the
// failoverPriority labels' values.
func (ix *Index) EndpointParts(sc *Scope) []EndpointPart {
	b := ix.baseParts(sc)
	out := make([]EndpointPart, len(b.parts))
	for i, bp := range b.parts {
		out[i] = bp.EndpointPart
		if v := proxyVariant(sc, bp); v != "" {
			out[i].Key += "@" + v
		}
	}
	return out
}

// GenerateServiceEndpoints computes one visible service's endpoint sets for
// the proxy of sc (an EndpointPart's content).
func GenerateServiceEndpoints(ix *Index, sc *Scope, svc *mesh.Service) []*endpoint.ClusterLoadAssignment {
	g := &gen{ix: ix, sc: sc, proxy: sc.Proxy, res: &Resources{}, part: partEndpoints}
	for _, p := range svc.Ports {
		g.outboundClusters(svc, p)
	}
	g.res.sort()
	return g.res.Endpoints
}

// EndpointsFingerprint hashes what the outbound endpoint sets depend on:
// the keys of every EndpointPart. Not the namespace itself: proxies of
// every namespace that see the same services through the same rules share
// one result.
func (ix *Index) EndpointsFingerprint(sc *Scope) string {
	b := ix.baseParts(sc)
	if !b.variant {
		return b.print
	}
	h := sha256.New()
	writeStr(h, b.print)
	for _, bp := range b.parts {
		if v := proxyVariant(sc, bp); v != "" {
			writeStr(h, bp.Key, v)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// baseParts computes the proxy-independent part keys once per proxy class,
// namespace and Sidecar per index.
func (ix *Index) baseParts(sc *Scope) *baseParts {
	p := sc.Proxy
	class := "envoy"
	if p.Type == mesh.ProxyGRPC {
		class = "grpc"
	}
	key := "eds/" + class + "/" + p.Namespace + "/"
	if sc.Sidecar != nil {
		key += sc.Sidecar.Namespace + "/" + sc.Sidecar.Name
	}
	if v, ok := ix.printCache.Load(key); ok {
		return v.(*baseParts)
	}
	b := &baseParts{parts: make([]basePart, len(sc.Services))}
	all := sha256.New()
	writeStr(all, "eds", class)
	for i, svc := range sc.Services {
		bp := basePart{EndpointPart: EndpointPart{Service: svc}}
		h := sha256.New()
		writeStr(h, class, ix.svcPrint[svc])
		if dr := ix.destinationRule(svc.Hostname, p.Namespace, svc.Namespace); dr != nil {
			writeStr(h, dr.hash)
			bp.locality, bp.labels = ix.localityDependence(svc, dr)
		}
		bp.Key = hex.EncodeToString(h.Sum(nil)[:12])
		b.variant = b.variant || bp.locality || len(bp.labels) > 0
		writeStr(all, bp.Key)
		b.parts[i] = bp
	}
	b.print = hex.EncodeToString(all.Sum(nil)[:12])
	v, _ := ix.printCache.LoadOrStore(key, b)
	return v.(*baseParts)
}

// proxyVariant is what a part's output takes from the proxy itself.
func proxyVariant(sc *Scope, bp basePart) string {
	if !bp.locality && len(bp.labels) == 0 {
		return ""
	}
	v := "loc=" + sc.Locality
	for _, k := range bp.labels {
		val, _ := proxyLabel(sc, k)
		v += ";" + k + "=" + val
	}
	return v
}
