package als

import "strings"

// Resolve fills r's destination service — Istio's destination_service,
// destination_service_name and destination_service_namespace — the way
// Istio's stats filter does, from the record and the mesh Metrics knows
// (SetWorkloads). The record's fields and the metric labels are the same
// values. A record that already names its service is left as it is.
//
// The host is, on the client side, the host of the outbound|port|subset|host
// cluster, else the request's authority (Istio's Host header fallback).
// On the server side, where the inbound|port|| cluster names no host, it
// is the service of the destination's workloads that the authority
// names (its host, or a short form: name, name.namespace,
// name.namespace.svc), else the first by host of those services (what
// Istio reads from the inbound cluster's metadata), else the authority's
// host, else the destination's canonical service (Istio's last resort).
// The name and namespace are the mesh service's; a host the mesh does
// not know is named as Kubernetes would (<name>.<namespace>.svc...),
// else by the host itself.
func (m *Metrics) Resolve(r *Record) {
	if r.DestinationService != "" {
		return
	}
	d := m.dir.Load()
	var s Service
	if r.Side == "server" {
		s = d.inboundService(r)
	} else {
		s = d.outboundService(r)
	}
	if s.Host == "" {
		return
	}
	r.DestinationService, r.DestinationServiceName, r.DestinationServiceNamespace = s.Host, s.Name(), s.Namespace
	if isPassthrough(r.Cluster) {
		r.DestinationServiceName = r.Cluster // as Istio names the passthrough and black hole clusters
	}
}

func (d *directory) outboundService(r *Record) Service {
	host := ""
	if rest, ok := strings.CutPrefix(r.Cluster, "outbound|"); ok {
		if i := strings.LastIndexByte(rest, '|'); i >= 0 {
			host = rest[i+1:]
		}
	}
	if host == "" {
		host = authorityHost(r.Authority)
	}
	return d.service(host)
}

func (d *directory) inboundService(r *Record) Service {
	host := authorityHost(r.Authority)
	svcs := d.services[r.Destination]
	for _, s := range svcs {
		if names(s, host) {
			return s
		}
	}
	if len(svcs) > 0 {
		return svcs[0]
	}
	if host != "" {
		s := d.service(host)
		if s.Namespace == "" {
			s.Namespace = namespaceOf(r.Destination) // Istio: the server's own namespace
		}
		return s
	}
	if p := d.peers[r.Destination]; p.canonical != "" {
		return Service{Host: p.canonical, Namespace: namespaceOf(r.Destination)}
	}
	return Service{}
}

// service is the mesh's service of host, else one named from the host.
func (d *directory) service(host string) Service {
	if host == "" {
		return Service{}
	}
	if s, ok := d.hosts[host]; ok {
		return s
	}
	s := Service{Host: host}
	if _, rest, ok := strings.Cut(host, "."); ok {
		if ns, rest, ok := strings.Cut(rest, "."); ok && (rest == "svc" || strings.HasPrefix(rest, "svc.")) {
			s.Namespace = ns
		}
	}
	return s
}

// names reports whether host is s's host or, for a Kubernetes host
// <name>.<ns>.svc..., one of its short forms: name, name.ns, name.ns.svc.
// It runs for every record and allocates nothing.
func names(s Service, host string) bool {
	if host == "" {
		return false
	}
	if host == s.Host {
		return true
	}
	name, ok := s.kubeName()
	if !ok {
		return false
	}
	tail, ok := strings.CutPrefix(host, name)
	if !ok {
		return false
	}
	if tail == "" {
		return true
	}
	tail, ok = strings.CutPrefix(tail, ".")
	if !ok {
		return false
	}
	tail, ok = strings.CutPrefix(tail, s.Namespace)
	return ok && (tail == "" || tail == ".svc")
}

// authorityHost is an authority without its port.
func authorityHost(a string) string {
	if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.Contains(a[i:], "]") {
		return a[:i]
	}
	return a
}

func isPassthrough(cluster string) bool {
	switch cluster {
	case "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughCluster",
		"InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6":
		return true
	}
	return false
}
