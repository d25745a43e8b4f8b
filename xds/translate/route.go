package translate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// Istio's default retry policy for Envoy routes without a retries field.
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// vhostFor builds the virtual host for one service port: from its
// VirtualService when one applies, else one default route.
func (g *gen) vhostFor(svc *mesh.Service, port mesh.Port, gw string) *route.VirtualHost {
	vh := &route.VirtualHost{
		Name:    fmt.Sprintf("%s:%d", svc.Hostname, port.Number),
		Domains: domainsFor(svc.Hostname, port.Number, gw == "mesh"),
	}
	if vs := g.ix.VirtualService(svc.Hostname, g.proxy.Namespace, gw); vs != nil {
		vh.Routes = g.httpRoutes(vs, port.Number, gw)
		return vh
	}
	vh.Routes = []*route.Route{g.defaultRoute(svc.Hostname, port.Number)}
	return vh
}

func domainsFor(host string, port uint32, withPort bool) []string {
	if !withPort {
		return []string{host, fmt.Sprintf("%s:%d", host, port)}
	}
	return []string{host, fmt.Sprintf("%s:%d", host, port)}
}

func (g *gen) defaultRoute(host string, port uint32) *route.Route {
	a := &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: OutboundName(port, "", host)}}
	g.routeDefaults(a)
	return &route.Route{Name: "default", Match: routeMatch(nil), Action: &route.Route_Route{Route: a}}
}

// routeDefaults applies Istio's defaults for Envoy: no route timeout and
// two retries on connection-level failures. gRPC gets neither.
func (g *gen) routeDefaults(a *route.RouteAction) {
	if g.proxy.Type == mesh.ProxyGRPC {
		return
	}
	if g.retryDefault == nil {
		g.retryDefault = &route.RetryPolicy{RetryOn: defaultRetryOn, NumRetries: wrapperspb.UInt32(2)}
		g.timeoutNone = durationpb.New(0)
	}
	// Shared by the generation's routes: a route with its own retries or
	// timeout replaces these, never edits them.
	a.Timeout, a.RetryPolicy = g.timeoutNone, g.retryDefault
}

// httpRoutes translates a VirtualService's http section (delegates
// expanded) in order.
func (g *gen) httpRoutes(vsCfg *mesh.Config, port uint32, gw string) []*route.Route {
	vs := vsCfg.Spec.(*networking.VirtualService)
	var out []*route.Route
	for i, hr := range g.expandDelegates(vsCfg, vs.GetHttp()) {
		matches := hr.GetMatch()
		if len(matches) == 0 {
			matches = []*networking.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			if !matchApplies(m, g.proxy, port, gw) {
				continue
			}
			out = append(out, g.httpRoute(vsCfg.Namespace, hr, m, port, i))
		}
	}
	return out
}

// expandDelegates replaces delegate routes with the delegate's routes,
// each restricted by the root route's match.
func (g *gen) expandDelegates(root *mesh.Config, routes []*networking.HTTPRoute) []*networking.HTTPRoute {
	var out []*networking.HTTPRoute
	for _, hr := range routes {
		d := hr.GetDelegate()
		if d == nil {
			out = append(out, hr)
			continue
		}
		ns := d.GetNamespace()
		if ns == "" {
			ns = root.Namespace
		}
		c, ok := g.ix.snap.Get(mesh.Key{Kind: mesh.KindVirtualService, Namespace: ns, Name: d.GetName()})
		if !ok {
			continue // Istio drops a route whose delegate is missing
		}
		dvs := c.Spec.(*networking.VirtualService)
		if !exportedTo(dvs.GetExportTo(), c.Namespace, root.Namespace) {
			continue // Istio: a delegate must be exported to the root's namespace
		}
		for _, dr := range dvs.GetHttp() {
			m, ok := mergeMatches(hr.GetMatch(), dr.GetMatch())
			if !ok {
				continue // the delegate route would widen the root's match
			}
			merged := cloneRoute(dr)
			merged.Match = m
			out = append(out, merged)
		}
	}
	return out
}

func (g *gen) httpRoute(ns string, hr *networking.HTTPRoute, m *networking.HTTPMatchRequest, port uint32, idx int) *route.Route {
	r := &route.Route{Name: hr.GetName(), Match: routeMatch(m)}
	if r.Name == "" {
		r.Name = fmt.Sprintf("route-%d", idx)
	}
	switch {
	case hr.GetRedirect() != nil:
		r.Action = &route.Route_Redirect{Redirect: redirect(hr.GetRedirect())}
	case hr.GetDirectResponse() != nil:
		r.Action = &route.Route_DirectResponse{DirectResponse: directResponse(hr.GetDirectResponse())}
	default:
		r.Action = &route.Route_Route{Route: g.routeAction(ns, hr, m, port)}
	}
	g.headerOps(r, hr.GetHeaders())
	g.perFilter(r, hr)
	return r
}

func (g *gen) routeAction(ns string, hr *networking.HTTPRoute, m *networking.HTTPMatchRequest, port uint32) *route.RouteAction {
	a := &route.RouteAction{}
	g.routeDefaults(a)
	dests := hr.GetRoute()
	if len(dests) == 1 {
		a.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: g.destCluster(ns, dests[0].GetDestination(), port)}
	} else {
		wc := &route.WeightedCluster{}
		for _, d := range dests {
			c := &route.WeightedCluster_ClusterWeight{Name: g.destCluster(ns, d.GetDestination(), port), Weight: wrapperspb.UInt32(uint32(d.GetWeight()))}
			c.RequestHeadersToAdd, c.RequestHeadersToRemove = headerOptions(d.GetHeaders().GetRequest())
			c.ResponseHeadersToAdd, c.ResponseHeadersToRemove = headerOptions(d.GetHeaders().GetResponse())
			wc.Clusters = append(wc.Clusters, c)
		}
		a.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if t := hr.GetTimeout(); t != nil {
		a.Timeout = t
		// grpc ignores RouteAction.timeout; it honours max_stream_duration.
		a.MaxStreamDuration = &route.RouteAction_MaxStreamDuration{MaxStreamDuration: t, GrpcTimeoutHeaderMax: t}
	}
	if rt := hr.GetRetries(); rt != nil {
		a.RetryPolicy = retryPolicy(rt)
	}
	g.rewrite(a, hr.GetRewrite(), m)
	for _, mp := range mirrors(hr) {
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &route.RouteAction_RequestMirrorPolicy{
			Cluster: g.destCluster(ns, mp.GetDestination(), port), RuntimeFraction: runtimeFraction(mp.GetPercentage()),
		})
	}
	if len(dests) > 0 {
		a.HashPolicy = g.hashPolicy(ns, dests[0].GetDestination())
	}
	return a
}

// destCluster names the cluster of a destination: its port, else the
// service's only port, else the port the route is served on.
func (g *gen) destCluster(ns string, d *networking.Destination, port uint32) string {
	host := Qualify(d.GetHost(), ns)
	p := d.GetPort().GetNumber()
	if p == 0 {
		if svcs := g.ix.snap.ServicesByHost(host); len(svcs) > 0 && len(svcs[0].Ports) == 1 {
			p = svcs[0].Ports[0].Number
		} else {
			p = port
		}
	}
	return OutboundName(p, d.GetSubset(), host)
}

func (g *gen) hashPolicy(ns string, d *networking.Destination) []*route.RouteAction_HashPolicy {
	host := Qualify(d.GetHost(), ns)
	svcNS := ""
	if svcs := g.ix.snap.ServicesByHost(host); len(svcs) > 0 {
		svcNS = svcs[0].Namespace
	}
	drCfg := g.ix.DestinationRule(host, g.proxy.Namespace, svcNS)
	if drCfg == nil {
		return nil
	}
	pol := effectivePolicy(drCfg.Spec.(*networking.DestinationRule), d.GetSubset(), d.GetPort().GetNumber())
	ch := pol.lb.GetConsistentHash()
	if ch == nil {
		return nil
	}
	hp := &route.RouteAction_HashPolicy{}
	switch {
	case ch.GetHttpHeaderName() != "":
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_Header_{Header: &route.RouteAction_HashPolicy_Header{HeaderName: ch.GetHttpHeaderName()}}
	case ch.GetHttpCookie() != nil:
		c := ch.GetHttpCookie()
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_Cookie_{Cookie: &route.RouteAction_HashPolicy_Cookie{Name: c.GetName(), Path: c.GetPath(), Ttl: c.GetTtl()}}
	case ch.GetUseSourceIp():
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
	case ch.GetHttpQueryParameterName() != "":
		hp.PolicySpecifier = &route.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: ch.GetHttpQueryParameterName()}}
	default:
		return nil
	}
	return []*route.RouteAction_HashPolicy{hp}
}

func mirrors(hr *networking.HTTPRoute) []*networking.HTTPMirrorPolicy {
	out := append([]*networking.HTTPMirrorPolicy(nil), hr.GetMirrors()...)
	if m := hr.GetMirror(); m != nil {
		out = append([]*networking.HTTPMirrorPolicy{{Destination: m, Percentage: hr.GetMirrorPercentage()}}, out...)
	}
	return out
}

func runtimeFraction(p *networking.Percent) *core.RuntimeFractionalPercent {
	pct := 100.0
	if p != nil {
		pct = p.GetValue()
	}
	return &core.RuntimeFractionalPercent{DefaultValue: fractionalPercent(pct)}
}

func retryPolicy(rt *networking.HTTPRetry) *route.RetryPolicy {
	if rt.GetAttempts() <= 0 {
		return nil
	}
	on := rt.GetRetryOn()
	if on == "" {
		on = defaultRetryOn
	}
	p := &route.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(uint32(rt.GetAttempts())), PerTryTimeout: rt.GetPerTryTimeout()}
	var codes []uint32
	for _, s := range strings.Split(on, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 100 && n < 600 {
			codes = append(codes, uint32(n))
		}
	}
	if len(codes) > 0 {
		p.RetriableStatusCodes = codes
		p.RetryOn = filterNumeric(on) + ",retriable-status-codes"
		p.RetryOn = strings.TrimPrefix(p.RetryOn, ",")
	}
	return p
}

func filterNumeric(on string) string {
	var keep []string
	for _, s := range strings.Split(on, ",") {
		s = strings.TrimSpace(s)
		if _, err := strconv.Atoi(s); err != nil && s != "" && s != "retriable-status-codes" {
			keep = append(keep, s)
		}
	}
	return strings.Join(keep, ",")
}

func (g *gen) rewrite(a *route.RouteAction, rw *networking.HTTPRewrite, m *networking.HTTPMatchRequest) {
	if rw == nil {
		return
	}
	if u := rw.GetUri(); u != "" {
		if m.GetUri().GetExact() != "" {
			a.RegexRewrite = &matcher.RegexMatchAndSubstitute{Pattern: &matcher.RegexMatcher{Regex: "^.*$"}, Substitution: u}
		} else {
			a.PrefixRewrite = u
		}
	}
	if r := rw.GetUriRegexRewrite(); r != nil {
		a.RegexRewrite = &matcher.RegexMatchAndSubstitute{Pattern: &matcher.RegexMatcher{Regex: r.GetMatch()}, Substitution: r.GetRewrite()}
	}
	if h := rw.GetAuthority(); h != "" {
		a.HostRewriteSpecifier = &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: h}
	}
}

var redirectCodes = map[uint32]route.RedirectAction_RedirectResponseCode{
	301: route.RedirectAction_MOVED_PERMANENTLY, 302: route.RedirectAction_FOUND, 303: route.RedirectAction_SEE_OTHER,
	307: route.RedirectAction_TEMPORARY_REDIRECT, 308: route.RedirectAction_PERMANENT_REDIRECT,
}

func redirect(r *networking.HTTPRedirect) *route.RedirectAction {
	a := &route.RedirectAction{HostRedirect: r.GetAuthority(), PortRedirect: r.GetPort()}
	if u := r.GetUri(); u != "" {
		a.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: u}
	}
	if s := r.GetScheme(); s != "" {
		a.SchemeRewriteSpecifier = &route.RedirectAction_SchemeRedirect{SchemeRedirect: s}
	}
	if c, ok := redirectCodes[r.GetRedirectCode()]; ok {
		a.ResponseCode = c
	}
	return a
}

func directResponse(d *networking.HTTPDirectResponse) *route.DirectResponseAction {
	a := &route.DirectResponseAction{Status: d.GetStatus()}
	switch {
	case d.GetBody().GetString_() != "":
		a.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: d.GetBody().GetString_()}}
	case len(d.GetBody().GetBytes()) > 0:
		a.Body = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: d.GetBody().GetBytes()}}
	}
	return a
}

func (g *gen) headerOps(r *route.Route, h *networking.Headers) {
	r.RequestHeadersToAdd, r.RequestHeadersToRemove = headerOptions(h.GetRequest())
	r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = headerOptions(h.GetResponse())
}

func headerOptions(ops *networking.Headers_HeaderOperations) ([]*core.HeaderValueOption, []string) {
	if ops == nil {
		return nil, nil
	}
	var add []*core.HeaderValueOption
	for _, k := range sortedKeys(ops.GetSet()) {
		add = append(add, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: ops.GetSet()[k]}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, k := range sortedKeys(ops.GetAdd()) {
		add = append(add, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: ops.GetAdd()[k]}, AppendAction: core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return add, append([]string(nil), ops.GetRemove()...)
}

// perFilter attaches route-scoped filter config: fault (scoped per route,
// since grpc ignores the fault filter's own header matching) and CORS
// (Envoy only; grpc has no CORS filter).
func (g *gen) perFilter(r *route.Route, hr *networking.HTTPRoute) {
	cfg := map[string]*anypb.Any{}
	if f := hr.GetFault(); f != nil {
		cfg[FilterFault] = mustAny(faultConfig(f))
	}
	if c := hr.GetCorsPolicy(); c != nil && g.proxy.Type != mesh.ProxyGRPC {
		cfg[FilterCORS] = mustAny(corsPolicy(c))
	}
	if len(cfg) > 0 {
		r.TypedPerFilterConfig = cfg
	}
}

func corsPolicy(c *networking.CorsPolicy) *corsv3.CorsPolicy {
	p := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.GetAllowMethods(), ","),
		AllowHeaders:  strings.Join(c.GetAllowHeaders(), ","),
		ExposeHeaders: strings.Join(c.GetExposeHeaders(), ","),
	}
	for _, o := range c.GetAllowOrigins() {
		if sm := stringMatcher(o); sm != nil {
			p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, sm)
		}
	}
	if d := c.GetMaxAge(); d != nil {
		p.MaxAge = fmt.Sprint(int64(d.AsDuration() / time.Second))
	}
	if b := c.GetAllowCredentials(); b != nil {
		p.AllowCredentials = wrapperspb.Bool(b.GetValue())
	}
	return p
}
