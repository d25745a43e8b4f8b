package authz

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/mesh"
)

// rbacEval is a small evaluator of Envoy RBAC protos with Envoy's
// semantics, used to hold the RBAC output to the same semantics suite as
// the Rego path. The grpc-go end-to-end tests judge a subset with grpc-go's
// own engine.
type rbacEval struct{ r *Request }

func (e rbacEval) policyMatch(p *rbacv3.Policy) bool {
	perm, id := false, false
	for _, x := range p.Permissions {
		perm = perm || e.perm(x)
	}
	for _, x := range p.Principals {
		id = id || e.id(x)
	}
	return perm && id
}

// firstMatch returns the matching policy with the smallest name (rule
// order inside one policy; names sort by policy then rule index < 10).
func (e rbacEval) matches(r *rbacv3.RBAC) []string {
	var out []string
	if r == nil {
		return nil
	}
	for name, p := range r.Policies {
		if e.policyMatch(p) {
			out = append(out, name)
		}
	}
	return out
}

func (e rbacEval) id(p *rbacv3.Principal) bool {
	switch x := p.Identifier.(type) {
	case *rbacv3.Principal_Any:
		return true
	case *rbacv3.Principal_AndIds:
		for _, i := range x.AndIds.Ids {
			if !e.id(i) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_OrIds:
		for _, i := range x.OrIds.Ids {
			if e.id(i) {
				return true
			}
		}
		return false
	case *rbacv3.Principal_NotId:
		return !e.id(x.NotId)
	case *rbacv3.Principal_Authenticated_:
		pr := e.r.Source.Principal
		if pr == "" {
			return false
		}
		if !strings.HasPrefix(pr, "spiffe://") {
			pr = "spiffe://" + pr
		}
		return strMatch(x.Authenticated.PrincipalName, pr, true)
	case *rbacv3.Principal_DirectRemoteIp:
		return cidrMatch(x.DirectRemoteIp.AddressPrefix, x.DirectRemoteIp.PrefixLen.GetValue(), e.r.Source.IP)
	case *rbacv3.Principal_RemoteIp:
		ip := e.r.RemoteIP
		if ip == "" {
			ip = e.r.Source.IP
		}
		return cidrMatch(x.RemoteIp.AddressPrefix, x.RemoteIp.PrefixLen.GetValue(), ip)
	case *rbacv3.Principal_Header:
		return e.header(x.Header)
	case *rbacv3.Principal_Metadata:
		return e.metadata(x.Metadata)
	}
	panic("unsupported principal " + p.String())
}

func (e rbacEval) perm(p *rbacv3.Permission) bool {
	switch x := p.Rule.(type) {
	case *rbacv3.Permission_Any:
		return true
	case *rbacv3.Permission_AndRules:
		for _, i := range x.AndRules.Rules {
			if !e.perm(i) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_OrRules:
		for _, i := range x.OrRules.Rules {
			if e.perm(i) {
				return true
			}
		}
		return false
	case *rbacv3.Permission_NotRule:
		return !e.perm(x.NotRule)
	case *rbacv3.Permission_Header:
		return e.header(x.Header)
	case *rbacv3.Permission_UrlPath:
		if e.r.HTTP == nil {
			return false
		}
		return strMatch(x.UrlPath.GetPath(), urlPath(e.r.HTTP.Path), true)
	case *rbacv3.Permission_UriTemplate:
		if e.r.HTTP == nil {
			return false
		}
		var cfg uritemplatev3.UriTemplateMatchConfig
		if err := x.UriTemplate.TypedConfig.UnmarshalTo(&cfg); err != nil {
			panic(err)
		}
		return regexp.MustCompile(TemplateRegex(cfg.PathTemplate)).MatchString(urlPath(e.r.HTTP.Path))
	case *rbacv3.Permission_DestinationIp:
		return cidrMatch(x.DestinationIp.AddressPrefix, x.DestinationIp.PrefixLen.GetValue(), e.r.Destination.IP)
	case *rbacv3.Permission_DestinationPort:
		return x.DestinationPort == e.r.Destination.Port
	case *rbacv3.Permission_RequestedServerName:
		return strMatch(x.RequestedServerName, e.r.SNI, true)
	}
	panic("unsupported permission " + p.String())
}

func (e rbacEval) header(h *routev3.HeaderMatcher) bool {
	if e.r.HTTP == nil {
		return false
	}
	hs := map[string]string{":authority": e.r.HTTP.Host, ":method": e.r.HTTP.Method, ":path": e.r.HTTP.Path}
	for k, v := range e.r.HTTP.Headers {
		hs[strings.ToLower(k)] = v
	}
	v, ok := hs[h.Name]
	switch m := h.HeaderMatchSpecifier.(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		return ok == m.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		return ok && strMatch(m.StringMatch, v, true)
	}
	panic("unsupported header matcher")
}

func (e rbacEval) metadata(m *matcherv3.MetadataMatcher) bool {
	if e.r.Auth == nil || m.Filter != JWTFilter {
		return false
	}
	var v any = map[string]any{DefaultJWTPayloadKey: e.r.Auth.Claims}
	for _, s := range m.Path {
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = obj[s.GetKey()]; !ok {
			return false
		}
	}
	switch x := m.Value.MatchPattern.(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		return true
	case *matcherv3.ValueMatcher_StringMatch:
		s, ok := v.(string)
		return ok && strMatch(x.StringMatch, s, true)
	case *matcherv3.ValueMatcher_ListMatch:
		list, ok := v.([]any)
		if !ok {
			return false
		}
		for _, el := range list {
			if s, ok := el.(string); ok && strMatch(x.ListMatch.GetOneOf().GetStringMatch(), s, true) {
				return true
			}
		}
		return false
	}
	panic("unsupported value matcher")
}

func strMatch(m *matcherv3.StringMatcher, v string, _ bool) bool {
	cmpv, mv := v, ""
	if m.IgnoreCase {
		cmpv = strings.ToLower(v)
	}
	low := func(s string) string {
		if m.IgnoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch x := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		mv = low(x.Exact)
		return cmpv == mv
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(cmpv, low(x.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(cmpv, low(x.Suffix))
	case *matcherv3.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + x.SafeRegex.Regex + ")$").MatchString(v)
	}
	panic("unsupported string matcher")
}

func cidrMatch(addr string, bits uint32, ip string) bool {
	p, err := netip.ParsePrefix(addr + "/" + strconv.Itoa(int(bits)))
	if err != nil {
		panic(err)
	}
	a, err := netip.ParseAddr(ip)
	return err == nil && p.Contains(a)
}

// urlPath is what RBAC's url_path and uri_template match: the :path
// without query and fragment, not normalised (the HCM did that).
func urlPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// decideRBAC is decideRBACAt at Istio's default path level, BASE.
func decideRBAC(set *RBACSet, r *Request) (allowed bool, rule string) {
	return decideRBACAt(set, r, mesh.PathNormalizationBase)
}

// decideRBACAt models Envoy's HTTP connection manager and its RBAC
// filters: the HCM normalises the path at level (Istio's settings for
// it), answering 400 to a path it cannot normalise, then the RBAC filters
// run in chain order on the normalised path.
func decideRBACAt(set *RBACSet, r *Request, level mesh.PathNormalization) (allowed bool, rule string) {
	if r.HTTP != nil {
		p, err := NormalizePath(r.HTTP.Path, level)
		if err != nil {
			return false, ""
		}
		if i := strings.IndexByte(r.HTTP.Path, '?'); i >= 0 {
			p += r.HTTP.Path[i:] // the HCM keeps the query in :path
		}
		h, rr := *r.HTTP, *r
		h.Path, rr.HTTP = p, &h
		r = &rr
	}
	e := rbacEval{r}
	for _, name := range sortedProviders(set) {
		if m := e.matches(set.Custom[name]); len(m) > 0 {
			return false, firstRule(m)
		}
	}
	if m := e.matches(set.Deny); len(m) > 0 {
		return false, firstRule(m)
	}
	if set.Allow == nil {
		return true, ""
	}
	if m := e.matches(set.Allow); len(m) > 0 {
		return true, firstRule(m)
	}
	return false, ""
}

// firstRule picks the rule Ward's Rego reports: policies in evaluation
// order (names sort the same way within one namespace), lowest rule index.
func firstRule(names []string) string {
	best := names[0]
	for _, n := range names[1:] {
		if ruleLess(n, best) {
			best = n
		}
	}
	return best
}

func ruleLess(a, b string) bool {
	pa, ia := splitRule(a)
	pb, ib := splitRule(b)
	if pa != pb {
		return pa < pb
	}
	return ia < ib
}

func splitRule(s string) (string, int) {
	i := strings.LastIndex(s, "-rule[")
	n, _ := strconv.Atoi(strings.TrimSuffix(s[i+len("-rule["):], "]"))
	return s[:i], n
}

// TestRBACAgreesWithRego runs the semantics suite through the native RBAC
// output and checks it decides exactly as the Rego path (verdict and
// deciding rule), for HTTP and TCP requests alike.
func TestRBACAgreesWithRego(t *testing.T) {
	n := 0
	for name, sf := range loadSemantics(t) {
		snap := mesh.NewSnapshot(meshConfigOf(t, sf.Mesh), parseConfigs(t, sf.Policies))
		eng, err := NewEngine(snap, EngineConfig{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sf.Cases {
			if c.NoRBAC {
				continue
			}
			n++
			t.Run(strings.TrimSuffix(name, ".yaml")+"/"+c.Name, func(t *testing.T) {
				p, err := eng.For(context.Background(), or(c.NS, "foo"), labelsOr(c.Labels))
				if err != nil {
					t.Fatal(err)
				}
				req := requestOf(c.Req)
				want, _ := p.Decide(context.Background(), req)
				set, err := BuildRBAC(externalOnly(p.Policies(), snap.Mesh()), req.HTTP == nil)
				if err != nil {
					t.Fatalf("BuildRBAC: %v", err)
				}
				allowed, rule := decideRBACAt(set, req, snap.Mesh().PathNormalizationLevel())
				if diff := cmp.Diff([]any{want.Allowed, want.Rule}, []any{allowed, rule}); diff != "" {
					t.Errorf("RBAC disagrees with Rego (-rego +rbac):\n%s", diff)
				}
			})
		}
	}
	if n < 150 {
		t.Errorf("only %d cases judged through RBAC", n)
	}
}

// externalOnly drops CUSTOM policies whose provider is delegated to an
// external server (they do not decide locally in either path).
func externalOnly(ps []*Policy, m mesh.MeshConfig) []*Policy {
	var out []*Policy
	for _, p := range ps {
		if ep, ok := findProvider(m, p.Provider); p.Action == ActionCustom && ok && ep.EnvoyExtAuthzGRPC != nil {
			continue
		}
		out = append(out, p)
	}
	return out
}
