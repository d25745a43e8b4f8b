package simulate

import (
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// fullMatch reports whether the RE2 regex re matches all of s, as
// Envoy's safe_regex does; a regex Go cannot compile never matches (Envoy
// would have rejected the config).
func fullMatch(re, s string) bool {
	c, err := regexp.Compile(`^(?:` + re + `)$`)
	return err == nil && c.MatchString(s)
}

// stringMatches is Envoy's StringMatcher; a nil matcher matches nothing.
func stringMatches(m *matcher.StringMatcher, v string) bool {
	if m == nil {
		return false
	}
	fold := func(s string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return fold(v) == fold(p.Exact)
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(fold(v), fold(p.Prefix))
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(fold(v), fold(p.Suffix))
	case *matcher.StringMatcher_Contains:
		return strings.Contains(fold(v), fold(p.Contains))
	case *matcher.StringMatcher_SafeRegex:
		return fullMatch(p.SafeRegex.GetRegex(), v)
	}
	return false // custom matchers are not simulated
}

// headerMatches is Envoy's HeaderMatcher over a header map whose keys
// are lower case (pseudo-headers included).
func headerMatches(m *route.HeaderMatcher, headers map[string]string) bool {
	v, ok := headers[strings.ToLower(m.GetName())]
	if !ok && m.GetTreatMissingHeaderAsEmpty() {
		v, ok = "", true
	}
	if !ok {
		_, isPresent := m.GetHeaderMatchSpecifier().(*route.HeaderMatcher_PresentMatch)
		return (isPresent && !m.GetPresentMatch()) != m.GetInvertMatch()
	}
	return headerValueMatches(m, v) != m.GetInvertMatch()
}

//nolint:staticcheck // the deprecated specifiers are still valid config
func headerValueMatches(m *route.HeaderMatcher, v string) bool {
	switch s := m.GetHeaderMatchSpecifier().(type) {
	case nil:
		return true // no specifier: presence
	case *route.HeaderMatcher_PresentMatch:
		return s.PresentMatch
	case *route.HeaderMatcher_StringMatch:
		return stringMatches(s.StringMatch, v)
	case *route.HeaderMatcher_ExactMatch:
		return v == s.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		return strings.HasPrefix(v, s.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		return strings.HasSuffix(v, s.SuffixMatch)
	case *route.HeaderMatcher_ContainsMatch:
		return strings.Contains(v, s.ContainsMatch)
	case *route.HeaderMatcher_SafeRegexMatch:
		return fullMatch(s.SafeRegexMatch.GetRegex(), v)
	case *route.HeaderMatcher_RangeMatch:
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n >= s.RangeMatch.GetStart() && n < s.RangeMatch.GetEnd()
	}
	return false
}

// cidrContains reports whether the CidrRange holds ip.
func cidrContains(c *core.CidrRange, ip netip.Addr) bool {
	bits, ok := cidrBits(c)
	if !ok || !ip.IsValid() {
		return false
	}
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil || a.Is4() != ip.Unmap().Is4() {
		return false
	}
	p, err := a.Prefix(bits)
	return err == nil && p.Contains(ip.Unmap())
}

// cidrBits is the prefix length (an unset length means the full address).
func cidrBits(c *core.CidrRange) (int, bool) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return 0, false
	}
	if c.GetPrefixLen() == nil {
		return a.BitLen(), true
	}
	return int(min(c.GetPrefixLen().GetValue(), uint32(a.BitLen()))), true
}

// metadata is dynamic metadata: filter namespace → key → value (string,
// float64, bool, nil, []any, map[string]any).
type metadata map[string]map[string]any

func (md metadata) set(ns, key string, v any) {
	if md[ns] == nil {
		md[ns] = map[string]any{}
	}
	md[ns][key] = v
}

// lookup walks a MetadataMatcher's path; ok is false when absent.
func (md metadata) lookup(m *matcher.MetadataMatcher) (any, bool) {
	var cur any = md[m.GetFilter()]
	if md[m.GetFilter()] == nil {
		return nil, false
	}
	for _, seg := range m.GetPath() {
		obj, isObj := cur.(map[string]any)
		if !isObj {
			return nil, false
		}
		v, ok := obj[seg.GetKey()]
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

// metadataMatches is Envoy's MetadataMatcher.
func metadataMatches(m *matcher.MetadataMatcher, md metadata) bool {
	v, ok := md.lookup(m)
	if !ok {
		v = nil
	}
	return valueMatches(m.GetValue(), v) != m.GetInvert()
}

// valueMatches is Envoy's ValueMatcher over a decoded value (nil is a
// missing or null value).
func valueMatches(m *matcher.ValueMatcher, v any) bool {
	switch p := m.GetMatchPattern().(type) {
	case *matcher.ValueMatcher_NullMatch_:
		return v == nil
	case *matcher.ValueMatcher_PresentMatch:
		return (v != nil) == p.PresentMatch
	case *matcher.ValueMatcher_StringMatch:
		s, ok := v.(string)
		return ok && stringMatches(p.StringMatch, s)
	case *matcher.ValueMatcher_BoolMatch:
		b, ok := v.(bool)
		return ok && b == p.BoolMatch
	case *matcher.ValueMatcher_DoubleMatch:
		return doubleMatches(p.DoubleMatch, v)
	case *matcher.ValueMatcher_ListMatch:
		return listMatches(p.ListMatch, v)
	case *matcher.ValueMatcher_OrMatch:
		for _, o := range p.OrMatch.GetValueMatchers() {
			if valueMatches(o, v) {
				return true
			}
		}
	}
	return false
}

func listMatches(m *matcher.ListMatcher, v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range list {
		if valueMatches(m.GetOneOf(), e) {
			return true
		}
	}
	return false
}

func doubleMatches(m *matcher.DoubleMatcher, v any) bool {
	f, ok := toFloat(v)
	if !ok {
		return false
	}
	if r := m.GetRange(); r != nil {
		return f >= r.GetStart() && f < r.GetEnd()
	}
	return math.Abs(f-m.GetExact()) < 1e-9
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
