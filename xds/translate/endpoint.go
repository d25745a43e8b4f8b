package translate

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wardmesh/ward/mesh"
)

// endpoints builds the ClusterLoadAssignment of a service port, keeping the
// workloads that carry every subset label, grouped by locality. Locality
// weights are the sum of their endpoints' weights: grpc drops localities
// without a positive load_balancing_weight.
func (g *gen) endpoints(name string, svc *mesh.Service, port mesh.Port, labels map[string]string, pol policy) *endpoint.ClusterLoadAssignment {
	byLoc := map[string]*endpoint.LocalityLbEndpoints{}
	for _, ep := range g.ix.snap.Endpoints(svc, port) {
		w := ep.Workload
		if !mesh.Selector(labels).Matches(w.Labels) {
			continue
		}
		loc := byLoc[w.Locality]
		if loc == nil {
			loc = &endpoint.LocalityLbEndpoints{Locality: parseLocality(w.Locality)}
			byLoc[w.Locality] = loc
		}
		weight := w.Weight
		if weight == 0 {
			weight = 1
		}
		loc.LbEndpoints = append(loc.LbEndpoints, lbEndpoint(w.Address, ep.Port, weight))
		loc.LoadBalancingWeight = wrapperspb.UInt32(loc.GetLoadBalancingWeight().GetValue() + weight)
	}
	applyDistribute(byLoc, pol)
	keys := make([]string, 0, len(byLoc))
	for k := range byLoc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	for _, k := range keys {
		cla.Endpoints = append(cla.Endpoints, byLoc[k])
	}
	return cla
}

// applyDistribute overrides locality weights from localityLbSetting.distribute
// ("from" is ignored: one control plane output serves one proxy whose
// locality we match against "from").
func applyDistribute(byLoc map[string]*endpoint.LocalityLbEndpoints, pol policy) {
	loc := pol.lb.GetLocalityLbSetting()
	if loc == nil || !loc.GetEnabled().GetValue() || len(loc.GetDistribute()) == 0 {
		return
	}
	to := loc.GetDistribute()[0].GetTo()
	for name, l := range byLoc {
		var w uint32
		for pattern, pct := range to {
			if localityMatches(pattern, name) {
				w = max(w, pct)
			}
		}
		if w == 0 {
			w = 1 // grpc drops zero-weight localities; keep them reachable but rare
		}
		l.LoadBalancingWeight = wrapperspb.UInt32(w)
	}
}

func localityMatches(pattern, loc string) bool {
	if pattern == "*" {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "/*"); ok {
		return loc == p || strings.HasPrefix(loc, p+"/")
	}
	return pattern == loc
}

func parseLocality(s string) *core.Locality {
	if s == "" {
		return &core.Locality{}
	}
	parts := strings.SplitN(s, "/", 3)
	l := &core.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

func lbEndpoint(addr string, port, weight uint32) *endpoint.LbEndpoint {
	ep := &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
		Address: socketAddress(addr, port),
	}}}
	if weight > 0 {
		ep.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return ep
}

func socketAddress(addr string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}
