package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// DomainSuffix completes short hostnames ("reviews" in namespace "bookinfo"
// becomes "reviews.bookinfo.svc.cluster.local"), as Istio does.
const DomainSuffix = "svc.cluster.local"

// Index is the per-snapshot lookup structure the translators read: virtual
// services and destination rules by host, gateways, sidecars and content
// fingerprints. Build it once per snapshot with NewIndex; it is immutable
// and safe for concurrent use.
type Index struct {
	snap *mesh.Snapshot
	vs   []*vsEntry
	dr   []*drEntry
	// by exact host, and the wildcard-host entries, both oldest first
	vsByHost   map[string][]*vsEntry
	vsWildcard []*vsEntry
	// byGateway holds the VirtualServices bound to each gateway
	// ("namespace/name"), with their hosts indexed (gateway servers).
	byGateway  map[string]*gatewayVS
	drByHost   map[string][]*drEntry
	drWildcard []*drEntry
	svcPrint   map[*mesh.Service]string
	// svcConfigPrint leaves out endpoint details clusters do not depend on
	svcConfigPrint map[*mesh.Service]string
	delegate       string // hash of every host-less (delegate) VirtualService
	// vsHosts hashes the mesh VirtualServices with a host that may be
	// outside a proxy's registry view (vsHostVhosts): no service, a
	// wildcard, or a service not exported everywhere.
	vsHosts  string
	meshHash string
	// srcLabelKeys are the label keys any VirtualService sourceLabels
	// match tests: the only proxy labels outbound output depends on.
	srcLabelKeys map[string]bool
	// per-(namespace, Sidecar) caches filled on first use
	visibleCache sync.Map // → []*mesh.Service
	printCache   sync.Map // → hash of the visible services
	gwPrint      sync.Map // *mesh.Config (a Gateway) → gatewayPrint
}

type vsEntry struct {
	cfg   *mesh.Config
	spec  *networking.VirtualService
	hosts []string
	hash  string
}

type drEntry struct {
	cfg  *mesh.Config
	spec *networking.DestinationRule
	host string
	hash string
}

// NewIndex indexes snap. It only reads snap.
func NewIndex(snap *mesh.Snapshot) *Index {
	ix := &Index{snap: snap, svcPrint: map[*mesh.Service]string{}, svcConfigPrint: map[*mesh.Service]string{}, srcLabelKeys: map[string]bool{}}
	dh := sha256.New()
	for _, c := range snap.All(mesh.KindVirtualService) {
		spec := c.Spec.(*networking.VirtualService)
		e := &vsEntry{cfg: c, spec: spec, hash: configHash(c)}
		for _, h := range spec.GetHosts() {
			e.hosts = append(e.hosts, Qualify(h, c.Namespace))
		}
		if len(e.hosts) == 0 {
			writeStr(dh, e.hash)
		}
		ix.collectSourceLabels(spec)
		ix.vs = append(ix.vs, e)
	}
	ix.delegate = hex.EncodeToString(dh.Sum(nil)[:8])
	for _, c := range snap.All(mesh.KindDestinationRule) {
		spec := c.Spec.(*networking.DestinationRule)
		ix.dr = append(ix.dr, &drEntry{cfg: c, spec: spec, host: Qualify(spec.GetHost(), c.Namespace), hash: configHash(c)})
	}
	sort.SliceStable(ix.vs, func(i, j int) bool { return mesh.Older(ix.vs[i].cfg, ix.vs[j].cfg) })
	sort.SliceStable(ix.dr, func(i, j int) bool { return mesh.Older(ix.dr[i].cfg, ix.dr[j].cfg) })
	ix.vsByHost, ix.drByHost = map[string][]*vsEntry{}, map[string][]*drEntry{}
	for _, e := range ix.vs {
		wild := false
		for _, h := range e.hosts {
			if strings.HasPrefix(h, "*") {
				wild = true
			} else if l := ix.vsByHost[h]; len(l) == 0 || l[len(l)-1] != e {
				ix.vsByHost[h] = append(l, e)
			}
		}
		if wild {
			ix.vsWildcard = append(ix.vsWildcard, e)
		}
	}
	ix.byGateway = indexGateways(ix.vs)
	for _, e := range ix.dr {
		if strings.HasPrefix(e.host, "*") {
			ix.drWildcard = append(ix.drWildcard, e)
		} else {
			ix.drByHost[e.host] = append(ix.drByHost[e.host], e)
		}
	}
	for _, svc := range snap.Services() {
		ix.svcPrint[svc] = ix.serviceFingerprint(svc, true)
		ix.svcConfigPrint[svc] = ix.serviceFingerprint(svc, false)
	}
	ix.vsHosts = ix.outsideRegistryVS()
	ix.meshHash = hashStrings(string(snap.Mesh().OutboundTrafficPolicy), snap.Mesh().TrustDomain, snap.Mesh().RootNamespace,
		string(snap.Mesh().PathNormalizationLevel()))
	return ix
}

// Snapshot returns the indexed snapshot.
func (ix *Index) Snapshot() *mesh.Snapshot { return ix.snap }

// Qualify expands a short host to its FQDN in namespace ns and lower-cases
// it; names with a dot and wildcards are kept.
func Qualify(host, ns string) string {
	h := strings.ToLower(host)
	if h == "*" || strings.Contains(h, ".") || ns == "" {
		return h
	}
	return h + "." + ns + "." + DomainSuffix
}

// hostMatches reports whether pattern (exact or "*.suffix" or "*") covers host.
func hostMatches(pattern, host string) bool {
	if pattern == host || pattern == "*" {
		return true
	}
	if strings.HasPrefix(pattern, "*.") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// exportedTo implements Istio's exportTo for an object in namespace own.
func exportedTo(exportTo []string, own, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == ns || (e == "." && own == ns) {
			return true
		}
	}
	return false
}

// VirtualService returns the VirtualService that routes host for a proxy
// in namespace ns, attached to gateway gw ("mesh" for sidecars and gRPC).
// The oldest matching object wins, as in Istio.
func (ix *Index) VirtualService(host, ns, gw string) *mesh.Config {
	for _, e := range ix.vsByHost[host] {
		if exportedTo(e.spec.GetExportTo(), e.cfg.Namespace, ns) && boundTo(e, gw) {
			return e.cfg
		}
	}
	for _, e := range ix.vsWildcard {
		if !exportedTo(e.spec.GetExportTo(), e.cfg.Namespace, ns) || !boundTo(e, gw) {
			continue
		}
		for _, h := range e.hosts {
			if hostMatches(h, host) {
				return e.cfg
			}
		}
	}
	return nil
}

// boundTo reports whether a VirtualService applies to gateway gw
// ("namespace/name" or "mesh").
func boundTo(e *vsEntry, gw string) bool {
	gws := e.spec.GetGateways()
	if len(gws) == 0 {
		return gw == "mesh"
	}
	for _, g := range gws {
		if g == gw || (g != "mesh" && !strings.Contains(g, "/") && e.cfg.Namespace+"/"+g == gw) {
			return true
		}
	}
	return false
}

// GatewayVirtualServices returns the VirtualServices bound to gateway gw
// ("namespace/name"), oldest first.
func (ix *Index) GatewayVirtualServices(gw string) []*mesh.Config {
	if b := ix.byGateway[gw]; b != nil {
		return slices.Clip(b.cfgs)
	}
	return nil
}

// gatewayVS is the VirtualServices bound to one gateway, oldest first,
// and their hosts, indexed so that each of a gateway's servers (Istio's
// benchmark has 1,000 on one gateway) finds the hosts it admits without
// scanning every VirtualService of the gateway.
type gatewayVS struct {
	cfgs  []*mesh.Config
	hosts []gatewayHost    // every (VirtualService, qualified host), in order
	exact map[string][]int // exact host → its positions in hosts
	wild  []int            // positions of wildcard hosts
}

type gatewayHost struct {
	cfg  *mesh.Config
	host string
}

// indexGateways groups vs (oldest first) by the gateways they bind to, as
// boundTo reads spec.gateways: "namespace/name", or a name in the
// VirtualService's namespace; "mesh" is not a gateway.
func indexGateways(vs []*vsEntry) map[string]*gatewayVS {
	out := map[string]*gatewayVS{}
	for _, e := range vs {
		for _, g := range e.spec.GetGateways() {
			if g == "mesh" {
				continue
			}
			if !strings.Contains(g, "/") {
				g = e.cfg.Namespace + "/" + g
			}
			b := out[g]
			if b == nil {
				b = &gatewayVS{exact: map[string][]int{}}
				out[g] = b
			}
			if n := len(b.cfgs); n > 0 && b.cfgs[n-1] == e.cfg {
				continue // listed twice (short and qualified name)
			}
			b.cfgs = append(b.cfgs, e.cfg)
			for _, h := range e.hosts {
				if strings.HasPrefix(h, "*") {
					b.wild = append(b.wild, len(b.hosts))
				} else {
					b.exact[h] = append(b.exact[h], len(b.hosts))
				}
				b.hosts = append(b.hosts, gatewayHost{cfg: e.cfg, host: h})
			}
		}
	}
	return out
}

// gatewayHosts returns the hosts of the VirtualServices bound to gateway
// gw that a server admitting allowed may take, in VirtualService then
// host order: every one when the server has a wildcard host, else those
// equal to one of its hosts and the wildcard ones (allowed.allows decides
// those). A superset of what allowed admits, in the same order as a scan.
func (ix *Index) gatewayHosts(gw string, allowed hostSet) []gatewayHost {
	b := ix.byGateway[gw]
	if b == nil {
		return nil
	}
	if len(allowed.wildcard) > 0 {
		return b.hosts
	}
	pos := slices.Clone(b.wild)
	for h := range allowed.exact {
		pos = append(pos, b.exact[h]...)
	}
	slices.Sort(pos)
	out := make([]gatewayHost, len(pos))
	for i, p := range pos {
		out[i] = b.hosts[p]
	}
	return out
}

// DestinationRule returns the DestinationRule for host as seen from a
// proxy in namespace ns: the proxy's namespace first, then the service's,
// then the root namespace, then any other exported one; exact hosts beat
// wildcards; older beats newer.
func (ix *Index) DestinationRule(host, ns, svcNS string) *mesh.Config {
	if e := ix.destinationRule(host, ns, svcNS); e != nil {
		return e.cfg
	}
	return nil
}

// destinationRule is DestinationRule returning the index entry (with its
// precomputed content hash).
func (ix *Index) destinationRule(host, ns, svcNS string) *drEntry {
	best, bestRank := (*drEntry)(nil), 1<<30
	root := ix.snap.Mesh().RootNamespace
	for _, e := range concat(ix.drByHost[host], ix.drWildcard) {
		if !hostMatches(e.host, host) || !exportedTo(e.spec.GetExportTo(), e.cfg.Namespace, ns) {
			continue
		}
		rank := 3
		switch e.cfg.Namespace {
		case ns:
			rank = 0
		case svcNS:
			rank = 1
		case root:
			rank = 2
		}
		rank *= 2
		if e.host != host {
			rank++
		}
		if rank < bestRank {
			best, bestRank = e, rank
		}
	}
	return best
}

// serviceFingerprint hashes a service, its routing config and its members.
// With endpoints false it keeps only what clusters depend on: whether there
// are members, their identities and TLS modes (SANs, auto mTLS) and, for
// DNS services, the addresses (inlined in the cluster).
func (ix *Index) serviceFingerprint(svc *mesh.Service, endpoints bool) string {
	h := sha256.New()
	writeStr(h, svc.Hostname, svc.Namespace, svc.Resolution.String(), strings.Join(svc.Addresses, ","), strings.Join(svc.ExportTo, ","), strings.Join(svc.SubjectAltNames, ","))
	if svc.MeshExternal {
		writeStr(h, "external")
	}
	for _, p := range svc.Ports {
		writeStr(h, p.Name, string(p.Protocol), itoa(p.Number), itoa(p.TargetPort))
	}
	dns := svc.Resolution == networking.ServiceEntry_DNS || svc.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN
	members := ix.snap.Members(svc)
	if endpoints || dns {
		for _, w := range members {
			writeStr(h, w.Name, w.Namespace, w.Address, w.ServiceAccount, w.Locality, w.Network, itoa(w.Weight))
			writeMap(h, w.Labels)
			writeMap32(h, w.Ports)
		}
	} else {
		ids := make([]string, 0, len(members))
		for _, w := range members {
			ids = append(ids, w.Namespace+"/"+w.ServiceAccount+"/"+string(w.TLSMode()))
		}
		writeStr(h, itoa(uint32(len(members))))
		writeStr(h, sortedUnique(ids)...)
	}
	for _, e := range concat(ix.vsByHost[svc.Hostname], ix.vsWildcard) {
		for _, vh := range e.hosts {
			if hostMatches(vh, svc.Hostname) {
				writeStr(h, e.hash)
				break
			}
		}
	}
	for _, e := range concat(ix.drByHost[svc.Hostname], ix.drWildcard) {
		if hostMatches(e.host, svc.Hostname) {
			writeStr(h, e.hash)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func configHash(c *mesh.Config) string {
	spec, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c.Spec)
	h := sha256.New()
	writeStr(h, c.Key().String(), c.CreationTimestamp.String(), string(spec))
	writeMap(h, c.Labels)
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func writeStr(h hash.Hash, ss ...string) {
	for _, s := range ss {
		h.Write([]byte(itoa(uint32(len(s)))))
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
}

func writeMap(h hash.Hash, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		writeStr(h, k, m[k])
	}
	writeStr(h, "|")
}

func writeMap32(h hash.Hash, m map[string]uint32) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		writeStr(h, k, itoa(m[k]))
	}
	writeStr(h, "|")
}

func hashStrings(ss ...string) string {
	h := sha256.New()
	writeStr(h, ss...)
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func (ix *Index) collectSourceLabels(vs *networking.VirtualService) {
	add := func(m map[string]string) {
		for k := range m {
			ix.srcLabelKeys[k] = true
		}
	}
	for _, r := range vs.GetHttp() {
		for _, m := range r.GetMatch() {
			add(m.GetSourceLabels())
		}
	}
	for _, r := range vs.GetTcp() {
		for _, m := range r.GetMatch() {
			add(m.GetSourceLabels())
		}
	}
	for _, r := range vs.GetTls() {
		for _, m := range r.GetMatch() {
			add(m.GetSourceLabels())
		}
	}
}

// concat returns a new slice holding a then b (never appending into a's
// backing array, which the index shares between goroutines).
func concat[T any](a, b []T) []T {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	return append(append(make([]T, 0, len(a)+len(b)), a...), b...)
}

// outsideRegistryVS hashes the VirtualServices vsHostVhosts may add for
// hosts that are not (visible) services; every outbound fingerprint
// includes it.
func (ix *Index) outsideRegistryVS() string {
	h := sha256.New()
	for _, e := range ix.vs {
		if !boundTo(e, "mesh") {
			continue
		}
		for _, host := range e.hosts {
			if ix.outsideRegistry(host) {
				writeStr(h, e.hash)
				break
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func (ix *Index) outsideRegistry(host string) bool {
	svcs := ix.snap.ServicesByHost(host)
	if strings.HasPrefix(host, "*") || len(svcs) == 0 {
		return true
	}
	for _, svc := range svcs {
		if len(svc.ExportTo) > 0 && !slices.Contains(svc.ExportTo, "*") {
			return true
		}
	}
	return false
}
