package node

import (
	"net/netip"
	"sync/atomic"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
)

// Labels that enrol a workload. Istio's name selects ambient mode; Ward
// adds the node a WorkloadEntry runs on (Istio's WorkloadEntry has no such
// field; in Kubernetes the pod's spec.nodeName is used instead).
// The CA places workloads on nodes by the same labels (ca.Placement).
const (
	LabelDataplaneMode = ca.LabelDataplaneMode
	DataplaneAmbient   = ca.DataplaneAmbient
	LabelNode          = ca.LabelNode
)

// Ambient reports whether w is enrolled in ambient mode.
func Ambient(w *mesh.Workload) bool { return w.Labels[LabelDataplaneMode] == DataplaneAmbient }

// registry indexes one snapshot's services and workloads by address for
// the outbound path. It is immutable.
type registry struct {
	snap  *mesh.Snapshot
	byIP  map[netip.Addr]*mesh.Workload
	byVIP map[netip.AddrPort]vip
	rr    *atomic.Uint64
}

type vip struct {
	svc  *mesh.Service
	port mesh.Port
}

func newRegistry(snap *mesh.Snapshot) *registry {
	r := &registry{snap: snap, byIP: map[netip.Addr]*mesh.Workload{}, byVIP: map[netip.AddrPort]vip{}, rr: new(atomic.Uint64)}
	for _, w := range snap.Workloads() {
		if a, err := netip.ParseAddr(w.Address); err == nil {
			r.byIP[a] = w
		}
	}
	for _, s := range snap.Services() {
		for _, a := range s.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue // CIDR addresses are not VIPs a client dials
			}
			for _, p := range s.Ports {
				r.byVIP[netip.AddrPortFrom(ip, uint16(p.Number))] = vip{s, p}
			}
		}
	}
	return r
}

// local returns the ambient workloads on node.
func (r *registry) local(node string) []*mesh.Workload {
	var out []*mesh.Workload
	for _, w := range r.snap.Workloads() {
		if Ambient(w) && w.Labels[LabelNode] == node && w.Name != "" {
			out = append(out, w)
		}
	}
	return out
}

// route is where an outgoing connection goes.
type route struct {
	target netip.AddrPort // the workload address and port to reach
	dest   *mesh.Workload // nil: not a known workload (passthrough)
}

// resolve maps a captured destination to a workload: a service VIP is
// load-balanced round-robin over its endpoints; a workload address is
// taken as is; anything else passes through unchanged.
func (r *registry) resolve(dst netip.AddrPort) (route, bool) {
	if v, ok := r.byVIP[dst]; ok {
		eps := r.snap.Endpoints(v.svc, v.port)
		if len(eps) == 0 {
			return route{}, false
		}
		ep := eps[r.rr.Add(1)%uint64(len(eps))]
		a, err := netip.ParseAddr(ep.Workload.Address)
		if err != nil {
			return route{}, false
		}
		return route{target: netip.AddrPortFrom(a, uint16(ep.Port)), dest: ep.Workload}, true
	}
	return route{target: dst, dest: r.byIP[dst.Addr()]}, true
}
