package analyze

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

func (a *analyzer) virtualServices() {
	for _, c := range a.snap.All(mesh.KindVirtualService) {
		vs, ok := c.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		obj := c.Key().String()
		for _, d := range destinations(vs) {
			a.destination(obj, c.Namespace, d.path, d.dest)
		}
		a.gateways(obj, c, vs)
		a.claimRouting(obj, c, vs)
	}
}

type destRef struct {
	path string
	dest *networking.Destination
}

func destinations(vs *networking.VirtualService) []destRef {
	var out []destRef
	for i, r := range vs.GetHttp() {
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fmt.Sprintf("spec.http[%d].route[%d]", i, j), d.GetDestination()})
		}
		if m := r.GetMirror(); m != nil {
			out = append(out, destRef{fmt.Sprintf("spec.http[%d].mirror", i), m})
		}
	}
	for i, r := range vs.GetTcp() {
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fmt.Sprintf("spec.tcp[%d].route[%d]", i, j), d.GetDestination()})
		}
	}
	for i, r := range vs.GetTls() {
		for j, d := range r.GetRoute() {
			out = append(out, destRef{fmt.Sprintf("spec.tls[%d].route[%d]", i, j), d.GetDestination()})
		}
	}
	return out
}

func (a *analyzer) destination(obj, ns, path string, d *networking.Destination) {
	host := translate.Qualify(d.GetHost(), ns)
	if strings.Contains(host, "*") {
		return
	}
	svcs := a.snap.ServicesByHost(host)
	if len(svcs) == 0 {
		a.add(HostNotFound, Error, obj, fmt.Sprintf("%s.destination.host %q: no service in the registry has this host", path, d.GetHost()))
		return
	}
	if d.GetSubset() == "" {
		return
	}
	dr := a.ix.DestinationRule(host, ns, svcs[0].Namespace)
	if dr == nil || !hasSubset(dr, d.GetSubset()) {
		a.add(SubsetNotFound, Error, obj, fmt.Sprintf("%s.destination.subset %q of host %s: no DestinationRule defines it", path, d.GetSubset(), host))
	}
}

func hasSubset(c *mesh.Config, name string) bool {
	dr, _ := c.Spec.(*networking.DestinationRule)
	for _, s := range dr.GetSubsets() {
		if s.GetName() == name {
			return true
		}
	}
	return false
}

// gatewayConfig resolves a VirtualService's gateway reference.
func (a *analyzer) gatewayConfig(ref, vsNS string) (*mesh.Config, bool) {
	ns, name := vsNS, ref
	if i := strings.Index(ref, "/"); i >= 0 {
		ns, name = ref[:i], ref[i+1:]
	}
	return a.snap.Get(mesh.Key{Kind: mesh.KindGateway, Namespace: ns, Name: name})
}

func (a *analyzer) gateways(obj string, c *mesh.Config, vs *networking.VirtualService) {
	for i, g := range vs.GetGateways() {
		if g == "mesh" {
			continue
		}
		if _, ok := a.gatewayConfig(g, c.Namespace); !ok {
			a.add(GatewayNotFound, Error, obj, fmt.Sprintf("spec.gateways[%d] %q: no such Gateway", i, g))
		}
	}
}

// claimRouting flags JWT claim matches on gateways where no
// RequestAuthentication verifies a token: the claims are never set, so
// the routes never match.
func (a *analyzer) claimRouting(obj string, c *mesh.Config, vs *networking.VirtualService) {
	claim := ""
	for _, r := range vs.GetHttp() {
		for _, m := range r.GetMatch() {
			for k := range m.GetHeaders() {
				if strings.HasPrefix(k, "@request.auth.claims") {
					claim = k
				}
			}
		}
	}
	if claim == "" {
		return
	}
	for _, g := range vs.GetGateways() {
		gc, ok := a.gatewayConfig(g, c.Namespace)
		if !ok || a.gatewayHasRA(gc) {
			continue
		}
		a.add(ClaimRoutingNoRA, Warning, obj, fmt.Sprintf("routes on %s but no RequestAuthentication applies to gateway %s: the claim is never set and the route never matches", claim, gc.Key()))
	}
}

func (a *analyzer) gatewayHasRA(gc *mesh.Config) bool {
	gw, _ := gc.Spec.(*networking.Gateway)
	sel := mesh.Selector(gw.GetSelector())
	for _, w := range a.snap.Workloads() {
		if sel.IsEmpty() || !sel.Matches(w.Labels) {
			continue
		}
		p := &mesh.Proxy{ID: w.Name + "." + w.Namespace, Type: mesh.ProxyRouter, Namespace: w.Namespace, Labels: w.Labels, ServiceAccount: w.ServiceAccount}
		if len(authn.RequestAuthsFor(a.snap, p)) > 0 {
			return true
		}
	}
	return false
}

func (a *analyzer) destinationRules() {
	for _, c := range a.snap.All(mesh.KindDestinationRule) {
		dr, ok := c.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		a.drTLS(c, "spec.trafficPolicy.tls", dr.GetTrafficPolicy().GetTls())
		for i, pl := range dr.GetTrafficPolicy().GetPortLevelSettings() {
			a.drTLS(c, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls", i), pl.GetTls())
		}
		for i, s := range dr.GetSubsets() {
			a.drTLS(c, fmt.Sprintf("spec.subsets[%d].trafficPolicy.tls", i), s.GetTrafficPolicy().GetTls())
			a.subsetMembers(c, dr, i, s)
		}
	}
	// Locality failover that Envoy would never use, from the translator's
	// own reading of the rules.
	for _, w := range a.ix.LocalityWarnings() {
		a.add(LocalityNoEffect, Warning, w.Rule.Key().String(), w.Where+": "+w.Message)
	}
}

// drTLS flags SIMPLE/MUTUAL origination that verifies no server name:
// without subjectAltNames (or sni) any certificate the CA trusts is
// accepted.
func (a *analyzer) drTLS(c *mesh.Config, path string, tls *networking.ClientTLSSettings) {
	m := tls.GetMode()
	if m != networking.ClientTLSSettings_SIMPLE && m != networking.ClientTLSSettings_MUTUAL {
		return
	}
	if len(tls.GetSubjectAltNames()) > 0 || tls.GetInsecureSkipVerify().GetValue() {
		return
	}
	a.add(DRTLSWithoutSAN, Warning, c.Key().String(), fmt.Sprintf("%s: mode %s without subjectAltNames: the server certificate's identity is not checked", path, m))
}

// selectors flags security policies whose workload selector matches no
// workload in their scope.
func (a *analyzer) selectors() {
	root := a.snap.Mesh().RootNamespace
	for _, k := range []mesh.Kind{mesh.KindPeerAuthentication, mesh.KindRequestAuthentication, mesh.KindAuthorizationPolicy} {
		for _, c := range a.snap.All(k) {
			sel, ok := mesh.SelectorOf(c.Spec)
			if !ok || sel.IsEmpty() || (k == mesh.KindPeerAuthentication && c.Namespace == root) {
				continue // root PeerAuthentication selectors: WA0402
			}
			if !a.matchesAny(sel, c.Namespace == root, c.Namespace) {
				a.add(SelectorNoMatch, Warning, c.Key().String(), fmt.Sprintf("selector %v matches no workload", map[string]string(sel)))
			}
		}
	}
}

func (a *analyzer) matchesAny(sel mesh.Selector, anyNS bool, ns string) bool {
	ws := a.snap.WorkloadsInNamespace(ns)
	if anyNS {
		ws = a.snap.Workloads()
	}
	for _, w := range ws {
		if sel.Matches(w.Labels) {
			return true
		}
	}
	return false
}

// subsetMembers flags a subset whose labels select none of the host's
// workloads: traffic routed to it has no endpoint.
func (a *analyzer) subsetMembers(c *mesh.Config, dr *networking.DestinationRule, i int, s *networking.Subset) {
	host := translate.Qualify(dr.GetHost(), c.Namespace)
	svcs := a.snap.ServicesByHost(host)
	if len(svcs) == 0 || strings.Contains(host, "*") {
		return
	}
	sel := mesh.Selector(s.GetLabels())
	for _, svc := range svcs {
		for _, w := range a.snap.Members(svc) {
			if sel.Matches(w.Labels) {
				return
			}
		}
	}
	a.add(SubsetNoWorkload, Warning, c.Key().String(), fmt.Sprintf("spec.subsets[%d] %q: labels %v select no workload of %s", i, s.GetName(), s.GetLabels(), host))
}

// conflictingHosts flags VirtualServices that claim the same host on the
// same gateway (or the mesh): only the oldest one is used for it, as in
// Istio, and the others are silently ignored for that host.
func (a *analyzer) conflictingHosts() {
	owner := map[string]*mesh.Config{}
	vss := append([]*mesh.Config(nil), a.snap.All(mesh.KindVirtualService)...)
	sort.SliceStable(vss, func(i, j int) bool { return mesh.Older(vss[i], vss[j]) })
	for _, c := range vss {
		vs, ok := c.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		gws := vs.GetGateways()
		if len(gws) == 0 {
			gws = []string{"mesh"}
		}
		for _, g := range gws {
			if g != "mesh" && !strings.Contains(g, "/") {
				g = c.Namespace + "/" + g
			}
			for _, h := range vs.GetHosts() {
				k := g + "|" + translate.Qualify(h, c.Namespace)
				if first, ok := owner[k]; ok && first != c {
					a.add(ConflictingVSHosts, Warning, c.Key().String(), fmt.Sprintf("host %s on %s is already routed by the older %s: this one is ignored for it", h, g, first.Key()))
					continue
				}
				owner[k] = c
			}
		}
	}
}
