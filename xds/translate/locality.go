package translate

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// Node metadata and labels a proxy's locality is read from.
const (
	// MetaLocality is "region/zone/subzone"; xds.ProxyFromNode fills it
	// from the Envoy/grpc node's locality.
	MetaLocality = "LOCALITY"
	// LabelLocality is Istio's pod label "region.zone.subzone".
	LabelLocality = "istio-locality"
	LabelRegion   = "topology.kubernetes.io/region"
	LabelZone     = "topology.kubernetes.io/zone"
	LabelSubzone  = "topology.istio.io/subzone"
	LabelNetwork  = "topology.istio.io/network"
)

// proxyLocality is the proxy's "region/zone/subzone": node locality, else
// the istio-locality label, else the topology labels, else the locality of
// the WorkloadEntry at one of its IPs in its namespace.
func (ix *Index) proxyLocality(p *mesh.Proxy) string {
	if l := p.Metadata[MetaLocality]; l != "" {
		return l
	}
	if l := p.Labels[LabelLocality]; l != "" {
		return strings.ReplaceAll(l, ".", "/")
	}
	if r := p.Labels[LabelRegion]; r != "" {
		return strings.TrimRight(r+"/"+p.Labels[LabelZone]+"/"+p.Labels[LabelSubzone], "/")
	}
	for _, w := range ix.snap.WorkloadsInNamespace(p.Namespace) {
		for _, ip := range p.IPs {
			if w.Address == ip && w.Locality != "" {
				return w.Locality
			}
		}
	}
	return ""
}

// localityLB is the locality load balancing that applies to one cluster,
// as Istio decides it: the DestinationRule's localityLbSetting (none when
// enabled is false), else the mesh default (enabled, no rules: Istio's
// default mesh config). Failover (priorities) needs outlier detection,
// since without it Envoy never moves traffic to a lower priority; distribute
// does not.
func localityLB(pol policy) (setting *networking.LocalityLoadBalancerSetting, failover bool) {
	setting = pol.lb.GetLocalityLbSetting()
	if setting == nil {
		setting = meshLocalityDefault
	} else if e := setting.GetEnabled(); e != nil && !e.GetValue() {
		return nil, false
	}
	return setting, pol.od != nil
}

// meshLocalityDefault is Istio's default mesh localityLbSetting: enabled,
// no rules. Shared and never modified.
var meshLocalityDefault = &networking.LocalityLoadBalancerSetting{}

// distributes reports whether locality weights from distribute apply.
func distributes(s *networking.LocalityLoadBalancerSetting) bool { return len(s.GetDistribute()) > 0 }

// localityDependence tells whether svc's endpoint sets under DestinationRule
// dr depend on the proxy's locality (distribute; failover when members are
// in several localities) and which proxy labels failoverPriority reads.
func (ix *Index) localityDependence(svc *mesh.Service, dr *drEntry) (locality bool, labels []string) {
	locs := map[string]bool{}
	for _, w := range ix.snap.Members(svc) {
		locs[w.Locality] = true
	}
	seen := map[string]bool{}
	for _, p := range svc.Ports {
		for _, subset := range append([]string{""}, subsetNames(dr.spec)...) {
			s, failover := localityLB(effectivePolicy(dr.spec, subset, p.Number))
			switch {
			case distributes(s):
				locality = true
			case failover:
				locality = locality || len(locs) > 1
				for _, l := range s.GetFailoverPriority() {
					if k, _, override := strings.Cut(l, "="); !override && !seen[k] {
						seen[k] = true
						labels = append(labels, k)
					}
				}
			}
		}
	}
	if len(labels) > 0 {
		locality = true // topology labels derive from the locality
	}
	sort.Strings(labels)
	return locality, labels
}

func subsetNames(dr *networking.DestinationRule) []string {
	var out []string
	for _, s := range dr.GetSubsets() {
		out = append(out, s.GetName())
	}
	return out
}

// proxyLabel reads a proxy label for failoverPriority, with Istio's
// topology labels derived from the locality when not set.
func proxyLabel(sc *Scope, k string) (string, bool) {
	if v, ok := sc.Proxy.Labels[k]; ok {
		return v, true
	}
	return topologyLabel(k, sc.Locality, sc.Proxy.Metadata["NETWORK"])
}

// workloadLabel is proxyLabel for an endpoint's workload.
func workloadLabel(w *mesh.Workload, k string) (string, bool) {
	if v, ok := w.Labels[k]; ok {
		return v, true
	}
	return topologyLabel(k, w.Locality, w.Network)
}

func topologyLabel(k, locality, network string) (string, bool) {
	l := parseLocality(locality)
	switch k {
	case LabelRegion:
		return l.GetRegion(), l.GetRegion() != ""
	case LabelZone:
		return l.GetZone(), l.GetZone() != ""
	case LabelSubzone:
		return l.GetSubZone(), l.GetSubZone() != ""
	case LabelNetwork:
		return network, network != ""
	}
	return "", false
}

// locGroup is one locality's endpoints with the workloads behind them
// (failoverPriority reads their labels).
type locGroup struct {
	lle       *endpoint.LocalityLbEndpoints
	workloads []*mesh.Workload
}

// applyLocality assigns locality weights or priorities relative to the
// proxy, as Istio's ApplyLocalityLoadBalancer: distribute wins; otherwise,
// with failover enabled, failoverPriority splits each locality by label
// match and failover ranks localities by proximity (same subzone, zone,
// region, then others; "from → to" region rules put non-listed regions
// last). Priorities are renumbered 0..n without gaps.
func (g *gen) applyLocality(groups []locGroup, pol policy) []*endpoint.LocalityLbEndpoints {
	out := make([]*endpoint.LocalityLbEndpoints, len(groups))
	for i, gr := range groups {
		out[i] = gr.lle
	}
	s, failover := localityLB(pol)
	switch {
	case s == nil:
	case distributes(s):
		out = applyDistribute(out, g.sc.Locality, s.GetDistribute())
	case failover && len(s.GetFailoverPriority()) > 0:
		if len(g.proxy.Labels) > 0 || g.sc.Locality != "" {
			out = g.applyFailoverPriority(groups, s.GetFailoverPriority())
		}
		if len(s.GetFailover()) > 0 {
			applyFailover(out, g.sc.Locality, s.GetFailover())
		}
	case failover:
		applyFailover(out, g.sc.Locality, s.GetFailover())
	}
	return out
}

// applyDistribute applies the first distribute rule whose "from" matches
// the proxy's locality: localities matching a "to" pattern share its
// percentage in proportion to their own weight; the others are dropped.
// Patterns are applied most specific first so overlaps resolve the same
// way every time.
func applyDistribute(in []*endpoint.LocalityLbEndpoints, proxyLoc string, rules []*networking.LocalityLoadBalancerSetting_Distribute) []*endpoint.LocalityLbEndpoints {
	pl := parseLocality(proxyLoc)
	for _, rule := range rules {
		if !localityMatch(pl, rule.GetFrom()) {
			continue
		}
		pats := make([]string, 0, len(rule.GetTo()))
		for p := range rule.GetTo() {
			pats = append(pats, p)
		}
		sort.Slice(pats, func(i, j int) bool {
			if a, b := strings.Count(pats[i], "*"), strings.Count(pats[j], "*"); a != b {
				return a < b
			}
			if a, b := strings.Count(pats[i], "/"), strings.Count(pats[j], "/"); a != b {
				return a > b
			}
			return pats[i] < pats[j]
		})
		weight := make([]uint32, len(in))
		for _, pat := range pats {
			var total uint64
			var idx []int
			for i, l := range in {
				if weight[i] == 0 && localityMatch(l.GetLocality(), pat) {
					idx = append(idx, i)
					total += uint64(max(l.GetLoadBalancingWeight().GetValue(), 1))
				}
			}
			for _, i := range idx {
				w := math.Ceil(float64(uint64(max(in[i].GetLoadBalancingWeight().GetValue(), 1))*uint64(rule.GetTo()[pat])) / float64(total))
				weight[i] = uint32(max(w, 1))
			}
		}
		var out []*endpoint.LocalityLbEndpoints
		for i, l := range in {
			if weight[i] > 0 && rule.GetTo()[matchedPattern(pats, l.GetLocality())] > 0 {
				l.LoadBalancingWeight = wrapperspb.UInt32(weight[i])
				out = append(out, l)
			}
		}
		return out
	}
	return in
}

// matchedPattern returns the first pattern (in application order) matching l.
func matchedPattern(pats []string, l *core.Locality) string {
	for _, p := range pats {
		if localityMatch(l, p) {
			return p
		}
	}
	return ""
}

// localityMatch is Istio's LocalityMatch: region must match (or be "*");
// zone and subzone match when empty or "*" in the rule.
func localityMatch(l *core.Locality, rule string) bool {
	parts := strings.SplitN(rule, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	ok := func(rule, v string, optional bool) bool {
		return rule == "*" || rule == v || (optional && rule == "")
	}
	return ok(parts[0], l.GetRegion(), false) && ok(parts[1], l.GetZone(), true) && ok(parts[2], l.GetSubZone(), true)
}

// lbPriority ranks an endpoint locality against the proxy's: 0 same
// subzone, 1 same zone, 2 same region, 3 other.
func lbPriority(proxy, ep *core.Locality) uint32 {
	switch {
	case proxy.GetRegion() != ep.GetRegion():
		return 3
	case proxy.GetZone() != ep.GetZone():
		return 2
	case proxy.GetSubZone() != ep.GetSubZone():
		return 1
	}
	return 0
}

// applyFailover sets priorities by proximity on top of any already
// assigned (failoverPriority's, each spanning five locality levels).
func applyFailover(ls []*endpoint.LocalityLbEndpoints, proxyLoc string, rules []*networking.LocalityLoadBalancerSetting_Failover) {
	if len(ls) == 1 && ls[0].Priority == 0 {
		return // one locality: priority 0 whatever the proxy's
	}
	pl := parseLocality(proxyLoc)
	for _, l := range ls {
		p := lbPriority(pl, l.GetLocality())
		if p == 3 {
			for _, r := range rules {
				if r.GetFrom() == pl.GetRegion() {
					if l.GetLocality().GetRegion() != r.GetTo() {
						p = 4
					}
					break
				}
			}
		}
		l.Priority = l.Priority*5 + p
	}
	renumber(ls)
}

// applyFailoverPriority splits every locality by how many leading
// failoverPriority labels its endpoints share with the proxy ("label" takes
// the proxy's value, "label=value" a fixed one): all match → priority 0;
// the first mismatch at label j → n−j.
func (g *gen) applyFailoverPriority(groups []locGroup, prio []string) []*endpoint.LocalityLbEndpoints {
	var out []*endpoint.LocalityLbEndpoints
	for _, gr := range groups {
		byPrio := map[uint32]*endpoint.LocalityLbEndpoints{}
		for i, w := range gr.workloads {
			p := g.labelPriority(w, prio)
			l := byPrio[p]
			if l == nil {
				l = &endpoint.LocalityLbEndpoints{Locality: gr.lle.GetLocality(), Priority: p}
				byPrio[p] = l
			}
			ep := gr.lle.LbEndpoints[i]
			l.LbEndpoints = append(l.LbEndpoints, ep)
			l.LoadBalancingWeight = wrapperspb.UInt32(l.GetLoadBalancingWeight().GetValue() + max(ep.GetLoadBalancingWeight().GetValue(), 1))
		}
		keys := make([]uint32, 0, len(byPrio))
		for p := range byPrio {
			keys = append(keys, p)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		for _, p := range keys {
			out = append(out, byPrio[p])
		}
	}
	renumber(out)
	return out
}

func (g *gen) labelPriority(w *mesh.Workload, prio []string) uint32 {
	for j, l := range prio {
		k, want, fixed := strings.Cut(l, "=")
		if !fixed {
			want, _ = proxyLabel(g.sc, k)
		}
		if got, _ := workloadLabel(w, k); got != want {
			return uint32(len(prio) - j)
		}
	}
	return 0
}

// renumber maps the priorities in use to 0..n-1, keeping their order
// (Envoy requires priorities without gaps).
func renumber(ls []*endpoint.LocalityLbEndpoints) {
	if len(ls) == 1 {
		ls[0].Priority = 0
		return
	}
	used := map[uint32]bool{}
	for _, l := range ls {
		used[l.Priority] = true
	}
	keys := make([]uint32, 0, len(used))
	for p := range used {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	rank := map[uint32]uint32{}
	for i, p := range keys {
		rank[p] = uint32(i)
	}
	for _, l := range ls {
		l.Priority = rank[l.Priority]
	}
}

// LocalityWarning is a DestinationRule locality setting with no effect.
type LocalityWarning struct {
	Rule    *mesh.Config
	Where   string // "trafficPolicy", "subset v1", "trafficPolicy port 8080"
	Message string
}

func (w LocalityWarning) Error() string {
	return fmt.Sprintf("DestinationRule %s/%s (%s): %s", w.Rule.Namespace, w.Rule.Name, w.Where, w.Message)
}

// LocalityWarnings lists DestinationRule locality settings that have no
// effect, as in Istio: failover or failoverPriority where the effective
// policy (top level, port level, subset) has no outlierDetection (Envoy
// would never leave priority 0), and failover next to distribute (one of
// them applies: distribute). The server logs them and `ward analyze`
// reports them; nothing is rejected, since Istio accepts such rules too.
func (ix *Index) LocalityWarnings() []LocalityWarning {
	var out []LocalityWarning
	for _, e := range ix.dr {
		seen := map[string]bool{}
		for _, subset := range append([]string{""}, subsetNames(e.spec)...) {
			for _, port := range drPorts(e.spec, subset) {
				pol := effectivePolicy(e.spec, subset, port)
				s, failover := localityLB(pol)
				fo := len(s.GetFailover()) > 0 || len(s.GetFailoverPriority()) > 0
				var msg string
				switch {
				case fo && distributes(s):
					msg = "localityLbSetting.failover/failoverPriority are ignored next to distribute"
				case fo && !failover:
					msg = "localityLbSetting.failover/failoverPriority have no effect without outlierDetection"
				default:
					continue
				}
				where := "trafficPolicy"
				if subset != "" {
					where = "subset " + subset
				}
				if port != 0 {
					where += " port " + itoa(port)
				}
				if k := where + msg; !seen[k] {
					seen[k] = true
					out = append(out, LocalityWarning{Rule: e.cfg, Where: where, Message: msg})
				}
			}
		}
	}
	return out
}

// drPorts lists 0 (no port) and every port with port-level settings that
// can change subset's effective policy.
func drPorts(dr *networking.DestinationRule, subset string) []uint32 {
	out := []uint32{0}
	add := func(tp *networking.TrafficPolicy) {
		for _, pl := range tp.GetPortLevelSettings() {
			if n := pl.GetPort().GetNumber(); n != 0 && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	add(dr.GetTrafficPolicy())
	for _, s := range dr.GetSubsets() {
		if s.GetName() == subset {
			add(s.GetTrafficPolicy())
		}
	}
	return out
}
