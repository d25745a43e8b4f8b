package translate

import (
	"fmt"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

type refKind uint8

const (
	refRoute     refKind = iota // an RDS name (fatal when missing)
	refCluster                  // a route or tcp_proxy destination (dangling)
	refEndpoints                // an EDS cluster's endpoints (fatal)
)

// need is one reference, with where it comes from for the error message.
type need struct {
	kind                 refKind
	name                 string
	where, vhost, router string // where: "listener x" / "route x" / "cluster x"
	tcp                  bool
}

// Refs is what a set of resources references and provides. A server that
// generates a proxy's config in separately cached parts checks references
// part by part (Resolve) instead of re-walking the union for every proxy.
type Refs struct {
	provides [3]map[string]bool
	needs    []need
}

// Refs collects r's references: every RDS name used by a listener
// (including api_listener HCMs, which go-control-plane's Consistent()
// does not see), every cluster used by a route or tcp_proxy, and the
// endpoints of every EDS cluster.
func (r *Resources) Refs() *Refs {
	x := &Refs{provides: [3]map[string]bool{
		make(map[string]bool, len(r.Routes)), make(map[string]bool, len(r.Clusters)), make(map[string]bool, len(r.Endpoints)),
	}}
	for _, rc := range r.Routes {
		x.provides[refRoute][rc.GetName()] = true
	}
	for _, c := range r.Clusters {
		x.provides[refCluster][c.GetName()] = true
	}
	for _, e := range r.Endpoints {
		x.provides[refEndpoints][e.GetClusterName()] = true
	}
	for _, l := range r.Listeners {
		where := fmt.Sprintf("listener %q", l.GetName())
		for _, h := range listenerHCMs(l) {
			if rds := h.GetRds(); rds != nil {
				x.needs = append(x.needs, need{kind: refRoute, name: rds.GetRouteConfigName(), where: where})
			}
			if rc := h.GetRouteConfig(); rc != nil {
				x.routeNeeds("listener "+l.GetName(), rc)
			}
		}
		for _, c := range listenerTCPClusters(l) {
			x.needs = append(x.needs, need{kind: refCluster, name: c, where: where, tcp: true})
		}
	}
	for _, rc := range r.Routes {
		x.routeNeeds("route "+rc.GetName(), rc)
	}
	for _, c := range r.Clusters {
		if c.GetEdsClusterConfig() != nil {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			x.needs = append(x.needs, need{kind: refEndpoints, name: name, where: fmt.Sprintf("cluster %q", c.GetName())})
		}
	}
	return x
}

func (x *Refs) routeNeeds(where string, rc *route.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			a := rt.GetRoute()
			if a == nil {
				continue
			}
			add := func(n string) {
				if n != "" {
					x.needs = append(x.needs, need{kind: refCluster, name: n, where: where, vhost: vh.GetName(), router: rt.GetName()})
				}
			}
			add(a.GetCluster())
			for _, w := range a.GetWeightedClusters().GetClusters() {
				add(w.GetName())
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				add(m.GetCluster())
			}
		}
	}
}

// Resolve returns the references of x that none of parts provides (x
// itself is not searched unless passed). The result provides nothing.
func (x *Refs) Resolve(parts ...*Refs) *Refs {
	out := &Refs{}
	for _, n := range x.needs {
		found := false
		for _, p := range parts {
			if p.provides[n.kind][n.name] {
				found = true
				break
			}
		}
		if !found {
			out.needs = append(out.needs, n)
		}
	}
	return out
}

// Join returns the references of every part together (what they provide
// is not kept).
func Join(parts ...*Refs) *Refs {
	out := &Refs{}
	for _, p := range parts {
		out.needs = append(out.needs, p.needs...)
	}
	return out
}

// Errors renders the references as fatal (missing route configs and
// endpoint sets) and dangling (missing clusters) errors.
func (x *Refs) Errors() (fatal, dangling []error) {
	for _, n := range x.needs {
		switch {
		case n.kind == refRoute:
			fatal = append(fatal, fmt.Errorf("%s: route config %q is not generated", n.where, n.name))
		case n.kind == refEndpoints:
			fatal = append(fatal, fmt.Errorf("%s: endpoints %q are not generated", n.where, n.name))
		case n.tcp:
			dangling = append(dangling, fmt.Errorf("%s: tcp_proxy cluster %q is not generated", n.where, n.name))
		default:
			dangling = append(dangling, fmt.Errorf("%s: virtual host %q route %q: cluster %q is not generated", n.where, n.vhost, n.router, n.name))
		}
	}
	return fatal, dangling
}
