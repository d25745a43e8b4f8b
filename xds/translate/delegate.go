package translate

import (
	"maps"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

func cloneRoute(r *networking.HTTPRoute) *networking.HTTPRoute {
	return proto.Clone(r).(*networking.HTTPRoute)
}

// mergeMatches ANDs a root route's matches with a delegate route's: every
// pair is merged, the delegate's fields refining the root's.
func mergeMatches(root, del []*networking.HTTPMatchRequest) []*networking.HTTPMatchRequest {
	if len(root) == 0 {
		return del
	}
	if len(del) == 0 {
		return root
	}
	var out []*networking.HTTPMatchRequest
	for _, r := range root {
		for _, d := range del {
			out = append(out, mergeMatch(r, d))
		}
	}
	return out
}

func mergeMatch(r, d *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	m := proto.Clone(r).(*networking.HTTPMatchRequest)
	if d.GetUri() != nil {
		m.Uri = d.GetUri()
	}
	if d.GetMethod() != nil {
		m.Method = d.GetMethod()
	}
	if d.GetAuthority() != nil {
		m.Authority = d.GetAuthority()
	}
	if d.GetScheme() != nil {
		m.Scheme = d.GetScheme()
	}
	m.Headers = mergeMap(m.GetHeaders(), d.GetHeaders())
	m.WithoutHeaders = mergeMap(m.GetWithoutHeaders(), d.GetWithoutHeaders())
	m.QueryParams = mergeMap(m.GetQueryParams(), d.GetQueryParams())
	if d.GetPort() != 0 {
		m.Port = d.GetPort()
	}
	m.IgnoreUriCase = m.GetIgnoreUriCase() || d.GetIgnoreUriCase()
	return m
}

func mergeMap(a, b map[string]*networking.StringMatch) map[string]*networking.StringMatch {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]*networking.StringMatch{}
	}
	maps.Copy(out, b)
	return out
}
