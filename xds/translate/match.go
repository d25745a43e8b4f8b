package translate

import (
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	"sort"
	"strings"

	"github.com/wardmesh/ward/mesh"
)

// routeMatch translates one HTTPMatchRequest; nil means "match everything".
func routeMatch(m *networking.HTTPMatchRequest) *route.RouteMatch {
	rm := &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.GetUri(); {
	case u.GetExact() != "":
		rm.PathSpecifier = &route.RouteMatch_Path{Path: u.GetExact()}
	case u.GetPrefix() != "":
		rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: u.GetPrefix()}
	case u.GetRegex() != "":
		rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: u.GetRegex()}}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	rm.Headers = append(rm.Headers, headerMatchers(m.GetHeaders(), false)...)
	rm.Headers = append(rm.Headers, headerMatchers(m.GetWithoutHeaders(), true)...)
	if s := m.GetMethod(); s != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", s, false))
	}
	if s := m.GetAuthority(); s != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", s, false))
	}
	if s := m.GetScheme(); s != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", s, false))
	}
	for _, name := range sortedKeys(m.GetQueryParams()) {
		rm.QueryParameters = append(rm.QueryParameters, queryMatcher(name, m.GetQueryParams()[name]))
	}
	return rm
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func headerMatchers(h map[string]*networking.StringMatch, invert bool) []*route.HeaderMatcher {
	var out []*route.HeaderMatcher
	for _, name := range sortedKeys(h) {
		out = append(out, headerMatcher(strings.ToLower(name), h[name], invert))
	}
	return out
}

// headerMatcher matches a header against a StringMatch; an empty match
// means the header must be present (absent when inverted).
func headerMatcher(name string, s *networking.StringMatch, invert bool) *route.HeaderMatcher {
	hm := &route.HeaderMatcher{Name: name, InvertMatch: invert}
	if sm := stringMatcher(s); sm != nil {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_StringMatch{StringMatch: sm}
	} else {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func queryMatcher(name string, s *networking.StringMatch) *route.QueryParameterMatcher {
	q := &route.QueryParameterMatcher{Name: name}
	if sm := stringMatcher(s); sm != nil {
		q.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_StringMatch{StringMatch: sm}
	} else {
		q.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}
	}
	return q
}

// stringMatcher translates a StringMatch; nil for an empty one.
func stringMatcher(s *networking.StringMatch) *matcher.StringMatcher {
	switch {
	case s.GetExact() != "":
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s.GetExact()}}
	case s.GetPrefix() != "":
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s.GetPrefix()}}
	case s.GetRegex() != "":
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: s.GetRegex()}}}
	}
	return nil
}

// matchApplies evaluates the parts of a match that are decided by who the
// proxy is and where the route is attached (port, source labels, source
// namespace, gateways) rather than by the request.
func matchApplies(m *networking.HTTPMatchRequest, p *mesh.Proxy, port uint32, gw string) bool {
	if m == nil {
		return true
	}
	return l4Applies(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), p, port, gw)
}

func l4Applies(mport uint32, labels map[string]string, srcNS string, gws []string, p *mesh.Proxy, port uint32, gw string) bool {
	if mport != 0 && port != 0 && mport != port {
		return false
	}
	if len(labels) > 0 && !mesh.Selector(labels).Matches(p.Labels) {
		return false
	}
	if srcNS != "" && srcNS != p.Namespace {
		return false
	}
	if len(gws) > 0 {
		found := false
		for _, g := range gws {
			if g == gw || strings.HasSuffix(gw, "/"+g) {
				found = true
			}
		}
		return found
	}
	return true
}
