package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// ValidationError lists every violation of one AuthorizationPolicy, each
// with its field path.
type ValidationError struct {
	Key    mesh.Key
	Errors []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("AuthorizationPolicy %s/%s: %s", e.Key.Namespace, e.Key.Name, strings.Join(e.Errors, "; "))
}

type verrs struct{ list []string }

func (v *verrs) add(path, format string, args ...any) {
	v.list = append(v.list, path+": "+fmt.Sprintf(format, args...))
}

// FromConfig validates an AuthorizationPolicy and converts it to the model.
// Invalid policies are rejected with every violation (a *ValidationError);
// nothing is silently skipped.
func FromConfig(c *mesh.Config) (*Policy, error) {
	ap, ok := c.Spec.(*security.AuthorizationPolicy)
	if !ok || ap == nil {
		return nil, fmt.Errorf("compile %s: spec is %T, want AuthorizationPolicy", c.Key(), c.Spec)
	}
	v := &verrs{}
	p := &Policy{Namespace: c.Namespace, Name: c.Name, DryRun: c.DryRun()}
	p.Action, p.Provider = action(ap, v)
	if ap.GetSelector() != nil && (len(ap.GetTargetRefs()) > 0 || ap.GetTargetRef() != nil) {
		v.add("spec", "only one of selector or targetRefs can be set")
	}
	for i, r := range ap.GetRules() {
		p.Rules = append(p.Rules, rule(fmt.Sprintf("spec.rules[%d]", i), r, v))
	}
	if len(v.list) > 0 {
		return nil, &ValidationError{Key: c.Key(), Errors: v.list}
	}
	qualifyServiceAccounts(p)
	p.Warnings = warnings(p)
	return p, nil
}

// Validate returns the violations of c, or nil when it is valid.
func Validate(c *mesh.Config) error {
	_, err := FromConfig(c)
	return err
}

func action(ap *security.AuthorizationPolicy, v *verrs) (Action, string) {
	prov := ap.GetProvider().GetName()
	switch ap.GetAction() {
	case security.AuthorizationPolicy_ALLOW:
		if ap.GetProvider() != nil {
			v.add("spec.provider", "only allowed with action CUSTOM")
		}
		return ActionAllow, ""
	case security.AuthorizationPolicy_DENY:
		if ap.GetProvider() != nil {
			v.add("spec.provider", "only allowed with action CUSTOM")
		}
		return ActionDeny, ""
	case security.AuthorizationPolicy_AUDIT:
		if ap.GetProvider() != nil {
			v.add("spec.provider", "only allowed with action CUSTOM")
		}
		return ActionAudit, ""
	case security.AuthorizationPolicy_CUSTOM:
		if prov == "" {
			v.add("spec.provider.name", "required with action CUSTOM")
		}
		return ActionCustom, prov
	}
	v.add("spec.action", "unknown action %v", ap.GetAction())
	return "", ""
}

func rule(path string, r *security.Rule, v *verrs) Rule {
	var out Rule
	if r == nil {
		v.add(path, "rule must not be null")
		return out
	}
	if r.From != nil && len(r.From) == 0 {
		v.add(path+".from", "must not be empty")
	}
	for i, f := range r.GetFrom() {
		out.From = append(out.From, source(fmt.Sprintf("%s.from[%d].source", path, i), f.GetSource(), v))
	}
	if r.To != nil && len(r.To) == 0 {
		v.add(path+".to", "must not be empty")
	}
	for i, t := range r.GetTo() {
		out.To = append(out.To, operation(fmt.Sprintf("%s.to[%d].operation", path, i), t.GetOperation(), v))
	}
	for i, c := range r.GetWhen() {
		out.When = append(out.When, condition(fmt.Sprintf("%s.when[%d]", path, i), c, v)...)
	}
	return out
}

// fieldSpec is one Source/Operation field pair (positive and not).
type fieldSpec struct {
	name, notName string
	attr          Attr
	vals, notVals []string
	check         func(string) error
}

func collect(path string, specs []fieldSpec, v *verrs) []Match {
	var out []Match
	for _, f := range specs {
		out = appendMatch(out, path+"."+f.name, f.attr, nil, f.vals, false, f.check, v)
		out = appendMatch(out, path+"."+f.notName, f.attr, nil, f.notVals, true, f.check, v)
	}
	if len(out) == 0 {
		v.add(path, "must not be empty")
	}
	return out
}

func appendMatch(out []Match, path string, a Attr, key []string, vals []string, not bool, check func(string) error, v *verrs) []Match {
	if len(vals) == 0 {
		return out
	}
	norm := make([]string, 0, len(vals))
	for i, s := range vals {
		if err := check(s); err != nil {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%v", err)
			continue
		}
		norm = append(norm, normalizeValue(a, s))
	}
	return append(out, Match{Attr: a, Key: key, Values: norm, Not: not, Field: path})
}

func normalizeValue(a Attr, s string) string {
	switch a {
	case AttrHost:
		return strings.ToLower(s)
	case AttrPrincipal:
		return strings.TrimPrefix(s, "spiffe://")
	case AttrSourceIP, AttrRemoteIP, AttrDestIP:
		return toCIDR(s)
	}
	return s
}

func source(path string, s *security.Source, v *verrs) []Match {
	if s == nil {
		v.add(path, "must not be null")
		return nil
	}
	if len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts()) > 0 &&
		len(s.GetPrincipals())+len(s.GetNotPrincipals())+len(s.GetNamespaces())+len(s.GetNotNamespaces()) > 0 {
		v.add(path+".serviceAccounts", "cannot be set with principals or namespaces")
	}
	return collect(path, []fieldSpec{
		{"principals", "notPrincipals", AttrPrincipal, s.GetPrincipals(), s.GetNotPrincipals(), checkPattern},
		{"requestPrincipals", "notRequestPrincipals", AttrRequestPrincipal, s.GetRequestPrincipals(), s.GetNotRequestPrincipals(), checkPattern},
		{"namespaces", "notNamespaces", AttrNamespace, s.GetNamespaces(), s.GetNotNamespaces(), checkPattern},
		{"serviceAccounts", "notServiceAccounts", AttrServiceAccount, s.GetServiceAccounts(), s.GetNotServiceAccounts(), checkServiceAccount},
		{"ipBlocks", "notIpBlocks", AttrSourceIP, s.GetIpBlocks(), s.GetNotIpBlocks(), checkIP},
		{"remoteIpBlocks", "notRemoteIpBlocks", AttrRemoteIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), checkIP},
		{"trustDomains", "notTrustDomains", AttrTrustDomain, s.GetTrustDomains(), s.GetNotTrustDomains(), checkTrustDomain},
	}, v)
}

func operation(path string, o *security.Operation, v *verrs) []Match {
	if o == nil {
		v.add(path, "must not be null")
		return nil
	}
	return collect(path, []fieldSpec{
		{"hosts", "notHosts", AttrHost, o.GetHosts(), o.GetNotHosts(), checkPattern},
		{"ports", "notPorts", AttrDestPort, o.GetPorts(), o.GetNotPorts(), checkPort},
		{"methods", "notMethods", AttrMethod, o.GetMethods(), o.GetNotMethods(), checkMethod},
		{"paths", "notPaths", AttrPath, o.GetPaths(), o.GetNotPaths(), checkPath},
	}, v)
}

func condition(path string, c *security.Condition, v *verrs) []Match {
	if c == nil {
		v.add(path, "must not be null")
		return nil
	}
	a, key, check, err := parseKey(c.GetKey())
	if err != nil {
		v.add(path+".key", "%v", err)
		return nil
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		v.add(path, "values or notValues must be set")
		return nil
	}
	var out []Match
	out = appendMatch(out, path+".values", a, key, c.GetValues(), false, check, v)
	return appendMatch(out, path+".notValues", a, key, c.GetNotValues(), true, check, v)
}

var whenKeys = map[string]struct {
	attr  Attr
	check func(string) error
}{
	"source.ip":              {AttrSourceIP, checkIP},
	"remote.ip":              {AttrRemoteIP, checkIP},
	"source.namespace":       {AttrNamespace, checkPattern},
	"source.principal":       {AttrPrincipal, checkPattern},
	"source.serviceAccount":  {AttrServiceAccount, checkServiceAccount},
	"source.trustDomain":     {AttrTrustDomain, checkTrustDomain},
	"request.auth.principal": {AttrRequestPrincipal, checkPattern},
	"request.auth.audiences": {AttrAudience, checkPattern},
	"request.auth.presenter": {AttrPresenter, checkPattern},
	"destination.ip":         {AttrDestIP, checkIP},
	"destination.port":       {AttrDestPort, checkPort},
	"connection.sni":         {AttrSNI, checkPattern},
}

// parseKey parses a `when` key. request.headers[name] and
// request.auth.claims[a][b]... carry a key path.
func parseKey(k string) (Attr, []string, func(string) error, error) {
	if w, ok := whenKeys[k]; ok {
		return w.attr, nil, w.check, nil
	}
	if rest, ok := strings.CutPrefix(k, "request.headers"); ok {
		parts, err := brackets(rest)
		if err != nil || len(parts) != 1 {
			return "", nil, nil, fmt.Errorf("invalid header key %q: want request.headers[<name>]", k)
		}
		return AttrHeader, []string{strings.ToLower(parts[0])}, checkPattern, nil
	}
	if rest, ok := strings.CutPrefix(k, "request.auth.claims"); ok {
		parts, err := brackets(rest)
		if err != nil {
			return "", nil, nil, fmt.Errorf("invalid claim key %q: %w", k, err)
		}
		return AttrClaim, parts, checkPattern, nil
	}
	if strings.HasPrefix(k, "experimental.envoy.filters.") {
		// Istio matches these against another Envoy filter's dynamic
		// metadata in native RBAC. Ward decides in its ext_authz engine,
		// which that metadata does not reach, so the condition could not
		// be evaluated the same way on every proxy: reject it rather than
		// enforce something else.
		return "", nil, nil, fmt.Errorf("%q: experimental.envoy.filters.* conditions are not supported by Ward (Envoy filter metadata is not visible to its authorization engine)", k)
	}
	return "", nil, nil, fmt.Errorf("unknown attribute %q", k)
}

// brackets parses "[a][b]..." into its non-empty parts.
func brackets(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] != '[' {
			return nil, errors.New("want [<name>]")
		}
		end := strings.IndexByte(s, ']')
		if end <= 1 {
			return nil, errors.New("want a non-empty [<name>]")
		}
		out = append(out, s[1:end])
		s = s[end+1:]
	}
	if len(out) == 0 {
		return nil, errors.New("want [<name>]")
	}
	return out, nil
}

// checkPattern accepts an Istio string pattern: any non-empty value, as
// Istio's validation does. A leading or trailing '*' is a wildcard and
// "*" alone is any non-empty value; every other '*' is literal (classify),
// except in namespaces, where each '*' is a wildcard (isGlob).
func checkPattern(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	return nil
}

// checkServiceAccount accepts "<namespace>/<service-account>" or a bare
// "<service-account>" of the policy's own namespace (qualified by
// qualifyServiceAccounts), with no wildcard: schema.ServiceAccount, the
// rules of Istio's CheckServiceAccount.
func checkServiceAccount(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	return schema.ServiceAccount(s)
}

// checkTrustDomain accepts a trust-domain pattern (schema.TrustDomainPattern).
func checkTrustDomain(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	return schema.TrustDomainPattern(s)
}

// qualifyServiceAccounts resolves bare service-account names to the
// policy's namespace, as the API defines them.
func qualifyServiceAccounts(p *Policy) {
	for i := range p.Rules {
		r := &p.Rules[i]
		for _, g := range r.From {
			qualify(g, p.Namespace)
		}
		qualify(r.When, p.Namespace)
	}
}

func qualify(ms []Match, ns string) {
	for _, m := range ms {
		if m.Attr != AttrServiceAccount {
			continue
		}
		for i, v := range m.Values {
			if !strings.Contains(v, "/") {
				m.Values[i] = ns + "/" + v
			}
		}
	}
}

func checkIP(s string) error {
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q: not an IP address or CIDR", s)
	}
	return nil
}

func toCIDR(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String()
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func checkPort(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != s {
		return fmt.Errorf("%q: not a port number", s)
	}
	return nil
}

// checkMethod accepts any method pattern, as Istio does: custom and
// WebDAV methods (PURGE, PROPFIND) are real. One that looks like a typo
// of a standard method is an analyzer warning (schema.MethodTypo).
func checkMethod(s string) error { return checkPattern(s) }

// checkPath accepts a pattern or an Envoy URI template ({*} one segment,
// {**} zero or more, the last operator), with the same rules the schema
// validator applies (schema.PathTemplate). Braces that are not operators,
// as in "/users/{id}", are literal.
func checkPath(s string) error {
	if !schema.IsPathTemplate(s) {
		return checkPattern(s)
	}
	return schema.PathTemplate(s)
}

// warnings explains HTTP-only fields that change meaning on TCP ports.
func warnings(p *Policy) []string {
	var out []string
	for i, r := range p.Rules {
		if !r.HasHTTP() {
			continue
		}
		if p.Action == ActionAllow {
			out = append(out, fmt.Sprintf("%s: uses HTTP-only fields; on TCP ports this ALLOW rule is dropped, which may deny all TCP traffic", p.RuleName(i)))
		} else {
			out = append(out, fmt.Sprintf("%s: uses HTTP-only fields; on TCP ports they are ignored, so this %s rule matches more broadly", p.RuleName(i), p.Action))
		}
	}
	return out
}
