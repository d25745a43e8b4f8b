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
// weights are the sum of their endpoints' weights (grpc drops localities
// without a positive load_balancing_weight); locality load balancing then
// sets weights or priorities relative to the proxy (applyLocality).
func (g *gen) endpoints(name string, svc *mesh.Service, port mesh.Port, labels map[string]string, pol policy) *endpoint.ClusterLoadAssignment {
	byLoc := map[string]*locGroup{}
	for _, ep := range g.ix.snap.Endpoints(svc, port) {
		w := ep.Workload
		if !mesh.Selector(labels).Matches(w.Labels) {
			continue
		}
		gr := byLoc[w.Locality]
		if gr == nil {
			gr = &locGroup{lle: &endpoint.LocalityLbEndpoints{Locality: parseLocality(w.Locality)}}
			byLoc[w.Locality] = gr
		}
		weight := w.Weight
		if weight == 0 {
			weight = 1
		}
		gr.lle.LbEndpoints = append(gr.lle.LbEndpoints, lbEndpoint(w.Address, ep.Port, weight))
		gr.lle.LoadBalancingWeight = wrapperspb.UInt32(gr.lle.GetLoadBalancingWeight().GetValue() + weight)
		gr.workloads = append(gr.workloads, w)
	}
	keys := make([]string, 0, len(byLoc))
	for k := range byLoc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	groups := make([]locGroup, len(keys))
	for i, k := range keys {
		groups[i] = *byLoc[k]
	}
	return &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: g.applyLocality(groups, pol)}
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
