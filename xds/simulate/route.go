package simulate

import (
	"net/url"
	"sort"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// selectVirtualHost picks the virtual host for host as Envoy does: an
// exact domain, then the longest suffix wildcard ("*.x", "*-x"), then the
// longest prefix wildcard ("x.*"), then "*". Matching ignores case.
func selectVirtualHost(rc *route.RouteConfiguration, host string) *route.VirtualHost {
	host = strings.ToLower(host)
	if rc.GetIgnorePortInHostMatching() {
		host = stripPort(host)
	}
	var best *route.VirtualHost
	bestScore := -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if n := domainScore(strings.ToLower(d), host); n > bestScore {
				best, bestScore = vh, n
			}
		}
	}
	return best
}

// domainScore ranks a domain against host; -1 is no match. Exact
// matches rank above suffix wildcards above prefix wildcards above "*";
// within a kind, longer wins.
func domainScore(d, host string) int {
	const kind = 1 << 16
	switch {
	case d == host:
		return 3 * kind
	case d == "*":
		return 0
	case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
		return 2*kind + len(d)
	case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
		return kind + len(d)
	}
	return -1
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i]
	}
	return host
}

// routeRequest is what route matching reads.
type routeRequest struct {
	path    string // normalised, query included
	headers map[string]string
}

// selectRoute returns the first route of vh whose match holds.
func selectRoute(vh *route.VirtualHost, r routeRequest) *route.Route {
	for _, rt := range vh.GetRoutes() {
		if routeMatches(rt.GetMatch(), r) {
			return rt
		}
	}
	return nil
}

// routeMatches is Envoy's RouteMatch: path specifier (on the path
// without query), headers, query parameters, gRPC and runtime fraction.
func routeMatches(m *route.RouteMatch, r routeRequest) bool {
	path, query, _ := strings.Cut(r.path, "?")
	if !pathMatches(m, path) {
		return false
	}
	for _, h := range m.GetHeaders() {
		if !headerMatches(h, r.headers) {
			return false
		}
	}
	if !queryMatches(m.GetQueryParameters(), query) {
		return false
	}
	if m.GetGrpc() != nil && !strings.HasPrefix(r.headers["content-type"], "application/grpc") {
		return false
	}
	if rf := m.GetRuntimeFraction(); rf != nil && rf.GetDefaultValue().GetNumerator() == 0 {
		return false
	}
	return true
}

func pathMatches(m *route.RouteMatch, path string) bool {
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(s string) string {
		if cs {
			return s
		}
		return strings.ToLower(s)
	}
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		return strings.HasPrefix(fold(path), fold(p.Prefix))
	case *route.RouteMatch_Path:
		return fold(path) == fold(p.Path)
	case *route.RouteMatch_SafeRegex:
		return fullMatch(p.SafeRegex.GetRegex(), path)
	case *route.RouteMatch_PathSeparatedPrefix:
		pre := fold(p.PathSeparatedPrefix)
		fp := fold(path)
		return fp == pre || strings.HasPrefix(fp, pre+"/")
	case *route.RouteMatch_ConnectMatcher_:
		return false // CONNECT requests are not simulated
	case *route.RouteMatch_PathMatchPolicy:
		return uriTemplateMatches(p.PathMatchPolicy, path)
	}
	return false
}

// queryMatches checks query_parameters against the decoded query (first
// value of each name).
func queryMatches(ms []*route.QueryParameterMatcher, raw string) bool {
	q, _ := url.ParseQuery(raw)
	for _, m := range ms {
		vs, ok := q[m.GetName()]
		switch {
		case m.GetPresentMatch():
			if !ok {
				return false
			}
		case m.GetStringMatch() != nil:
			if !ok || !stringMatches(m.GetStringMatch(), vs[0]) {
				return false
			}
		case !ok:
			return false
		}
	}
	return true
}

// applyRoute turns the matched route's action into the result.
func (s *Simulator) applyRoute(rt *route.Route, r routeRequest, res *Result) {
	switch {
	case rt.GetRedirect() != nil:
		res.Location = redirectTarget(rt.GetRedirect(), r)
		res.finish(Redirected, redirectStatus(rt.GetRedirect()), "route_redirect")
	case rt.GetDirectResponse() != nil:
		res.finish(DirectResponse, int(rt.GetDirectResponse().GetStatus()), "direct_response")
	case rt.GetNonForwardingAction() != nil:
		res.finish(Allowed, 200, "non_forwarding_action")
	case rt.GetRoute() != nil:
		s.forward(rt.GetRoute(), r, res)
	default:
		res.finish(NoRoute, 404, "route_without_action")
	}
}

// forward picks the upstream cluster of a RouteAction.
func (s *Simulator) forward(ra *route.RouteAction, r routeRequest, res *Result) {
	switch {
	case ra.GetCluster() != "":
		res.Cluster = ra.GetCluster()
	case ra.GetClusterHeader() != "":
		res.Cluster = r.headers[strings.ToLower(ra.GetClusterHeader())]
	case ra.GetWeightedClusters() != nil:
		for _, w := range ra.GetWeightedClusters().GetClusters() {
			res.Weighted = append(res.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight().GetValue()})
		}
		if len(res.Weighted) > 0 {
			res.Cluster = heaviest(res.Weighted)
		}
	}
	if res.Cluster == "" || !s.hasCluster(res.Cluster) {
		res.tracef("cluster %q is not served", res.Cluster)
		res.finish(NoCluster, 503, "cluster_not_found")
		return
	}
	res.tracef("router → %s %v", res.Cluster, res.Weighted)
	res.finish(Allowed, 200, "forwarded")
}

// hasCluster reports whether the proxy has the cluster (always true when
// the resources carry no clusters).
func (s *Simulator) hasCluster(name string) bool {
	if len(s.res.Clusters) == 0 {
		return true
	}
	for _, c := range s.res.Clusters {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

func redirectStatus(r *route.RedirectAction) int {
	switch r.GetResponseCode() {
	case route.RedirectAction_FOUND:
		return 302
	case route.RedirectAction_SEE_OTHER:
		return 303
	case route.RedirectAction_TEMPORARY_REDIRECT:
		return 307
	case route.RedirectAction_PERMANENT_REDIRECT:
		return 308
	}
	return 301
}

func redirectTarget(rd *route.RedirectAction, r routeRequest) string {
	scheme := r.headers[":scheme"]
	if rd.GetHttpsRedirect() {
		scheme = "https"
	} else if rd.GetSchemeRedirect() != "" {
		scheme = rd.GetSchemeRedirect()
	}
	host := r.headers[":authority"]
	if rd.GetHostRedirect() != "" {
		host = rd.GetHostRedirect()
	}
	path := r.path
	if rd.GetPathRedirect() != "" {
		path = rd.GetPathRedirect()
	}
	return scheme + "://" + host + path
}

// perFilterConfig finds a filter's per-route config: route, then virtual
// host, then route configuration (the most specific wins).
func perFilterConfig(name string, rc *route.RouteConfiguration, vh *route.VirtualHost, rt *route.Route) proto.Message {
	for _, m := range []map[string]*anypb.Any{rt.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig(), rc.GetTypedPerFilterConfig()} {
		if c, ok := m[name]; ok {
			return unpack(c)
		}
	}
	return nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
