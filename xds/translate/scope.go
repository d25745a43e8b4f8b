package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// Scope is what one proxy may see: its Sidecar (if any), the services
// visible to it after exportTo and Sidecar egress scoping, and its
// outbound traffic policy.
type Scope struct {
	Proxy    *mesh.Proxy
	Sidecar  *mesh.Config // nil when none applies
	Services []*mesh.Service
	Outbound mesh.OutboundPolicy
	// Inbound lists the services whose workloads this proxy runs
	// (mesh.Snapshot.ProxyServices; for a gateway, only those selecting its
	// labels: gateways get no inbound side).
	Inbound []*mesh.Service
	// Refused lists the workloads at the proxy's IPs that back a service of
	// its namespace under another identity: not served, for the server to
	// log.
	Refused []mesh.Claim
	// Gateways lists the Gateways selecting a router proxy.
	Gateways []*mesh.Config
	// Locality is the proxy's "region/zone/subzone" (node locality,
	// istio-locality or topology labels, or its WorkloadEntry's).
	Locality string
	// ports is where the proxy's workload serves (inbound listeners).
	ports []inboundPort
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// Scope computes the proxy's view of the mesh.
func (ix *Index) Scope(p *mesh.Proxy) *Scope {
	sc := &Scope{Proxy: p, Sidecar: ix.sidecarFor(p), Outbound: ix.snap.Mesh().OutboundTrafficPolicy, Locality: ix.proxyLocality(p)}
	var sidecar *networking.Sidecar
	if sc.Sidecar != nil {
		sidecar = sc.Sidecar.Spec.(*networking.Sidecar)
		switch sidecar.GetOutboundTrafficPolicy().GetMode() {
		case networking.OutboundTrafficPolicy_REGISTRY_ONLY:
			if sidecar.GetOutboundTrafficPolicy() != nil {
				sc.Outbound = mesh.OutboundRegistryOnly
			}
		case networking.OutboundTrafficPolicy_ALLOW_ANY:
			sc.Outbound = mesh.OutboundAllowAny
		}
	}
	sc.Services = ix.visible(p.Namespace, sc.Sidecar, sidecar)
	switch p.Type {
	case mesh.ProxyRouter:
		sc.Inbound = ix.snap.ServicesForWorkload(p.Namespace, p.Labels)
		sc.Gateways = ix.gatewaysFor(p)
	case mesh.ProxyGRPC:
		sc.Inbound, sc.Refused = ix.snap.ProxyServices(p)
		sc.ports = ix.inboundPorts(p, sc.Inbound)
	default:
		sc.Inbound, sc.Refused = ix.snap.ProxyServices(p)
		sc.ports = ix.sidecarInbound(sc)
	}
	return sc
}

// visible returns the services a proxy in ns under Sidecar sc sees,
// computed once per (namespace, Sidecar) per index: every proxy of a
// namespace shares the list.
func (ix *Index) visible(ns string, scCfg *mesh.Config, sidecar *networking.Sidecar) []*mesh.Service {
	key := ns + "/"
	if scCfg != nil {
		key += scCfg.Namespace + "/" + scCfg.Name
	}
	if v, ok := ix.visibleCache.Load(key); ok {
		return v.([]*mesh.Service)
	}
	var out []*mesh.Service
	seen := map[string]bool{}
	for _, svc := range ix.snap.Services() {
		if seen[svc.Hostname] || !svc.VisibleTo(ns) || !egressAllows(sidecar, ns, svc) {
			continue
		}
		// The oldest declaration of a host visible to the proxy wins.
		for _, cand := range ix.snap.ServicesByHost(svc.Hostname) {
			if cand.VisibleTo(ns) && egressAllows(sidecar, ns, cand) {
				svc = cand
				break
			}
		}
		seen[svc.Hostname] = true
		out = append(out, svc)
	}
	ix.visibleCache.Store(key, out)
	return out
}

// sidecarFor picks the Sidecar for a proxy: one in its namespace whose
// selector matches, else the namespace default, else the root default.
func (ix *Index) sidecarFor(p *mesh.Proxy) *mesh.Config {
	var nsDefault *mesh.Config
	for _, c := range ix.snap.InNamespace(mesh.KindSidecar, p.Namespace) {
		sel := c.Spec.(*networking.Sidecar).GetWorkloadSelector().GetLabels()
		if len(sel) == 0 {
			if nsDefault == nil {
				nsDefault = c
			}
			continue
		}
		if mesh.Selector(sel).Matches(p.Labels) {
			return c
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	for _, c := range ix.snap.InNamespace(mesh.KindSidecar, ix.snap.Mesh().RootNamespace) {
		if len(c.Spec.(*networking.Sidecar).GetWorkloadSelector().GetLabels()) == 0 {
			return c
		}
	}
	return nil
}

// egressAllows applies Sidecar egress hosts ("ns/host", "./*", "*/*",
// "~ns/host", "~/*") to a service.
func egressAllows(sc *networking.Sidecar, proxyNS string, svc *mesh.Service) bool {
	return egressAllowsHost(sc, proxyNS, svc.Namespace, svc.Hostname)
}

// egressAllowsHost applies Sidecar egress hosts to host declared in
// namespace ns: some egress listener must import it and not exclude it.
func egressAllowsHost(sc *networking.Sidecar, proxyNS, ns, host string) bool {
	if sc == nil || len(sc.GetEgress()) == 0 {
		return true
	}
	for _, eg := range sc.GetEgress() {
		if listenerImports(eg.GetHosts(), proxyNS, ns, host) {
			return true
		}
	}
	return false
}

// listenerImports applies one egress listener's hosts: a host is imported
// when an entry selects it and no exclusion ("~" before the namespace; a
// bare "~" means any namespace, so "~/*" excludes everything) does.
func listenerImports(hosts []string, proxyNS, ns, host string) bool {
	imported := false
	for _, h := range hosts {
		egNS, egHost, ok := strings.Cut(h, "/")
		if !ok {
			egNS, egHost = "*", h
		}
		egNS, exclude := strings.CutPrefix(egNS, "~")
		switch egNS {
		case "":
			egNS = "*"
		case ".":
			egNS = proxyNS
		}
		if (egNS != "*" && egNS != ns) || !hostMatches(strings.ToLower(egHost), host) {
			continue
		}
		if exclude {
			return false
		}
		imported = true
	}
	return imported
}

func (ix *Index) gatewaysFor(p *mesh.Proxy) []*mesh.Config {
	var out []*mesh.Config
	for _, c := range ix.snap.All(mesh.KindGateway) {
		sel := c.Spec.(*networking.Gateway).GetSelector()
		if len(sel) > 0 && mesh.Selector(sel).Matches(p.Labels) {
			out = append(out, c)
		}
	}
	return out
}

// Fingerprint hashes everything the proxy's output depends on; see
// OutboundFingerprint and InboundFingerprint.
func (ix *Index) Fingerprint(sc *Scope) string {
	return ix.OutboundFingerprint(sc) + "." + ix.InboundFingerprint(sc)
}

// OutboundFingerprint hashes what the outbound side depends on: proxy
// type and namespace, its Sidecar, the services it sees (with their
// endpoints and routing config), the labels VirtualService sourceLabels
// test, its gateways and the mesh config. Not its IPs, name or other
// labels, so replicas (and every proxy of a namespace without
// sourceLabels rules) share one result.
func (ix *Index) OutboundFingerprint(sc *Scope) string {
	return ix.outboundFingerprint(sc, ix.svcPrint, "full/")
}

// OutboundConfigFingerprint is OutboundFingerprint without endpoint churn
// (addresses, ports, weights, localities of members): what clusters,
// listeners and routes depend on.
func (ix *Index) OutboundConfigFingerprint(sc *Scope) string {
	return ix.outboundFingerprint(sc, ix.svcConfigPrint, "config/")
}

func (ix *Index) outboundFingerprint(sc *Scope, prints map[*mesh.Service]string, kind string) string {
	p := sc.Proxy
	// The service part is the same for every proxy of a namespace and
	// Sidecar; hash it once per index.
	key := kind + string(p.Type) + "/" + p.Namespace + "/"
	if sc.Sidecar != nil {
		key += sc.Sidecar.Namespace + "/" + sc.Sidecar.Name
	}
	var svcs string
	if v, ok := ix.printCache.Load(key); ok {
		svcs = v.(string)
	} else {
		sh := sha256.New()
		if sc.Sidecar != nil {
			writeStr(sh, configHash(sc.Sidecar))
		}
		for _, svc := range sc.Services {
			writeStr(sh, prints[svc])
		}
		svcs = hex.EncodeToString(sh.Sum(nil))
		ix.printCache.Store(key, svcs)
	}
	h := sha256.New()
	writeStr(h, kind, string(p.Type), p.Namespace, ix.meshHash, ix.delegate, ix.vsHosts, string(sc.Outbound), svcs)
	rel := map[string]string{}
	for k := range ix.srcLabelKeys {
		if v, ok := p.Labels[k]; ok {
			rel[k] = v
		}
	}
	writeMap(h, rel)
	for _, g := range sc.Gateways {
		writeStr(h, ix.gatewayPrint(g))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// gatewayPrint hashes a Gateway and the VirtualServices bound to it, once
// per index: every router selected by a gateway of 1,000 VirtualServices
// would otherwise marshal and hash all of them for its fingerprint.
func (ix *Index) gatewayPrint(g *mesh.Config) string {
	if v, ok := ix.gwPrint.Load(g); ok {
		return v.(string)
	}
	h := sha256.New()
	writeStr(h, configHash(g))
	for _, vs := range ix.GatewayVirtualServices(g.Namespace + "/" + g.Name) {
		writeStr(h, configHash(vs))
	}
	v, _ := ix.gwPrint.LoadOrStore(g, hex.EncodeToString(h.Sum(nil)))
	return v.(string)
}

// InboundFingerprint hashes what the inbound side depends on: proxy type,
// the mesh config (path normalisation of its HTTP connection managers)
// and the addresses and ports its workload serves (and its Sidecar's
// ingress, already folded into those ports).
func (ix *Index) InboundFingerprint(sc *Scope) string {
	h := sha256.New()
	writeStr(h, string(sc.Proxy.Type), ix.meshHash)
	for _, in := range sc.ports {
		writeStr(h, in.addr, itoa(in.port), itoa(in.target), string(in.proto), itoa(in.endpoint))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
