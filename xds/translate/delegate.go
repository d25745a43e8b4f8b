package translate

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

func cloneRoute(r *networking.HTTPRoute) *networking.HTTPRoute {
	return proto.Clone(r).(*networking.HTTPRoute)
}

// mergeMatches ANDs a root route's matches with a delegate route's: every
// compatible pair is merged, the delegate's fields refining the root's.
// ok is false when some delegate match refines none of the root's (or no
// pair is compatible): Istio then drops the delegate route, so a delegate
// can never route requests outside what the root handed it (its "/admin"
// under a root's "/team-a/").
func mergeMatches(root, del []*networking.HTTPMatchRequest) (out []*networking.HTTPMatchRequest, ok bool) {
	if len(root) == 0 {
		return del, true
	}
	if len(del) == 0 {
		return root, true
	}
	for _, d := range del {
		found := false
		for _, r := range root {
			if matchConflicts(r, d) {
				continue
			}
			out = append(out, mergeMatch(r, d))
			found = true
		}
		if !found {
			return nil, false
		}
	}
	return out, len(out) > 0
}

// matchConflicts reports whether delegate match d can match a request
// root match r cannot (Istio's hasConflict): a string match must refine
// the root's, headers, query parameters, port, source namespace and
// labels and gateways may only narrow it, and uri case handling must
// agree.
func matchConflicts(r, d *networking.HTTPMatchRequest) bool {
	for _, p := range [][2]*networking.StringMatch{{r.GetUri(), d.GetUri()}, {r.GetScheme(), d.GetScheme()},
		{r.GetMethod(), d.GetMethod()}, {r.GetAuthority(), d.GetAuthority()}} {
		if stringMatchConflicts(p[0], p[1]) {
			return true
		}
	}
	for _, m := range [][2]map[string]*networking.StringMatch{{r.GetHeaders(), d.GetHeaders()},
		{r.GetWithoutHeaders(), d.GetWithoutHeaders()}, {r.GetQueryParams(), d.GetQueryParams()}} {
		for k, dv := range m[1] {
			if stringMatchConflicts(m[0][k], dv) {
				return true
			}
		}
	}
	if r.GetIgnoreUriCase() != d.GetIgnoreUriCase() {
		return true
	}
	if r.GetPort() > 0 && d.GetPort() > 0 && r.GetPort() != d.GetPort() {
		return true
	}
	if r.GetSourceNamespace() != "" && d.GetSourceNamespace() != r.GetSourceNamespace() {
		return true
	}
	for k, v := range d.GetSourceLabels() {
		if rv, ok := r.GetSourceLabels()[k]; ok && rv != v {
			return true
		}
	}
	return gatewaysWiden(r.GetGateways(), d.GetGateways())
}

// gatewaysWiden: the delegate names a gateway the root does not.
func gatewaysWiden(root, del []string) bool {
	if len(root) == 0 || len(del) == 0 {
		return false
	}
	for _, g := range del {
		if !slices.Contains(root, g) {
			return true
		}
	}
	return false
}

// stringMatchConflicts: delegate match d is not a refinement of root
// match r. Either side unset never conflicts; a regex on either side
// admits nothing else on the other; an exact root admits only the same
// exact; a prefix root admits a prefix or exact that starts with it.
func stringMatchConflicts(r, d *networking.StringMatch) bool {
	if r == nil || d == nil {
		return false
	}
	if r.GetRegex() != "" || d.GetRegex() != "" {
		return true
	}
	if e := r.GetExact(); e != "" {
		return d.GetExact() != e
	}
	if p := r.GetPrefix(); p != "" {
		switch {
		case d.GetPrefix() != "":
			return !strings.HasPrefix(d.GetPrefix(), p)
		case d.GetExact() != "":
			return !strings.HasPrefix(d.GetExact(), p)
		}
	}
	return true
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
