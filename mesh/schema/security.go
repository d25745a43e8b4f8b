package schema

import (
	"fmt"
	"slices"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func init() {
	validators[mesh.KindAuthorizationPolicy] = validateAuthorizationPolicy
	validators[mesh.KindPeerAuthentication] = validatePeerAuthentication
	validators[mesh.KindRequestAuthentication] = validateRequestAuthentication
}

func wrongType(e *errs, c *mesh.Config, want string) {
	e.add("spec", "%s spec must be %s, got %T", c.Kind, want, c.Spec)
}

func validateAuthorizationPolicy(c *mesh.Config, e *errs) {
	in, ok := c.Spec.(*security.AuthorizationPolicy)
	if !ok {
		wrongType(e, c, "*v1beta1.AuthorizationPolicy")
		return
	}
	checkTargeting(e, in.GetSelector(), in.GetTargetRef(), in.GetTargetRefs())
	checkAuthzAction(c, in, e)
	for i, r := range in.GetRules() {
		p := idx("spec.rules", i)
		if r == nil {
			e.add(p, "rule must not be null")
			continue
		}
		checkAuthzRule(e, p, r, in.GetAction())
	}
}

func checkAuthzAction(c *mesh.Config, in *security.AuthorizationPolicy, e *errs) {
	a := in.GetAction()
	if _, ok := security.AuthorizationPolicy_Action_name[int32(a)]; !ok {
		e.add("spec.action", "invalid action %d (want ALLOW, DENY, AUDIT or CUSTOM)", a)
	}
	// Unlike Istio (ALLOW and DENY only), Ward honours dry-run for every
	// action: a CUSTOM or AUDIT policy can be trialled without effect too.
	switch {
	case a == security.AuthorizationPolicy_CUSTOM && in.Rules == nil:
		e.add("spec.rules", "CUSTOM action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request")
	case a == security.AuthorizationPolicy_CUSTOM && in.GetProvider().GetName() == "":
		e.add("spec.provider.name", "CUSTOM action requires provider.name")
	case a != security.AuthorizationPolicy_CUSTOM && in.GetProvider() != nil:
		e.add("spec.provider", "provider is only allowed with action CUSTOM, found %s", a)
	case a == security.AuthorizationPolicy_DENY && in.Rules == nil:
		e.add("spec.rules", "DENY action without rules is meaningless as it will never be triggered; add an empty rule {} to deny every request")
	}
}

func checkAuthzRule(e *errs, p string, r *security.Rule, action security.AuthorizationPolicy_Action) {
	custom := action == security.AuthorizationPolicy_CUSTOM
	for j, f := range r.GetFrom() {
		fp := idx(p+".from", j)
		if f.GetSource() == nil {
			e.add(fp+".source", "from.source must not be null")
			continue
		}
		checkSource(e, fp+".source", f.GetSource(), custom)
	}
	for j, t := range r.GetTo() {
		tp := idx(p+".to", j)
		if t.GetOperation() == nil {
			e.add(tp+".operation", "to.operation must not be null")
			continue
		}
		checkOperation(e, tp+".operation", t.GetOperation())
	}
	for j, w := range r.GetWhen() {
		checkCondition(e, idx(p+".when", j), w, custom)
	}
	// A rule on HTTP-only attributes changes meaning on TCP ports (ALLOW
	// dropped, DENY broadened): the analyzer reports that (WA0302) where
	// it knows the ports in scope; validation does not guess.
}

type namedList struct {
	name string
	vals []string
}

func sourceLists(s *security.Source) []namedList {
	return []namedList{
		{"principals", s.GetPrincipals()}, {"notPrincipals", s.GetNotPrincipals()},
		{"requestPrincipals", s.GetRequestPrincipals()}, {"notRequestPrincipals", s.GetNotRequestPrincipals()},
		{"namespaces", s.GetNamespaces()}, {"notNamespaces", s.GetNotNamespaces()},
		{"serviceAccounts", s.GetServiceAccounts()}, {"notServiceAccounts", s.GetNotServiceAccounts()},
		{"ipBlocks", s.GetIpBlocks()}, {"notIpBlocks", s.GetNotIpBlocks()},
		{"remoteIpBlocks", s.GetRemoteIpBlocks()}, {"notRemoteIpBlocks", s.GetNotRemoteIpBlocks()},
		{"trustDomains", s.GetTrustDomains()}, {"notTrustDomains", s.GetNotTrustDomains()},
	}
}

// checkSource validates one from.source.
func checkSource(e *errs, p string, s *security.Source, custom bool) {
	empty := true
	for _, l := range sourceLists(s) {
		if len(l.vals) == 0 {
			continue
		}
		empty = false
		lp := p + "." + l.name
		checkEmptyValues(e, lp, l.vals)
		switch l.name {
		case "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks":
			checkIPs(e, lp, l.vals)
		case "serviceAccounts", "notServiceAccounts":
			for i, v := range l.vals {
				checkServiceAccount(e, idx(lp, i), v)
			}
			if len(l.vals) > 16 {
				e.add(lp, "at most 16 service accounts (the API's limit), got %d", len(l.vals))
			}
		case "trustDomains", "notTrustDomains":
			for i, v := range l.vals {
				checkErr(e, idx(lp, i), TrustDomainPattern(v))
			}
		}
		if custom && customUnsupported(l.name) {
			e.add(lp, "%s is not supported with action CUSTOM", l.name)
		}
	}
	if empty {
		e.add(p, "from.source must not be empty")
	}
	hasSA := len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts()) > 0
	if hasSA && len(s.GetPrincipals())+len(s.GetNotPrincipals())+len(s.GetNamespaces())+len(s.GetNotNamespaces()) > 0 {
		e.add(p, "serviceAccounts/notServiceAccounts cannot be set together with principals or namespaces")
	}
}

// customUnsupported reports whether a source field is one Istio rejects
// with action CUSTOM (the identity fields the external authorizer
// cannot see).
func customUnsupported(field string) bool {
	f := strings.ToLower(field)
	return strings.Contains(f, "principals") || strings.Contains(f, "namespaces") || strings.Contains(f, "serviceaccounts") ||
		strings.Contains(f, "trustdomains")
}

// TrustDomainPattern checks a trustDomains entry or source.trustDomain
// value: exact, "prefix*", "*suffix" or "*" (Istio's CheckWildcardValues),
// without '/' (Istio's CheckTrustDomainValues). Istio skips the '/' check
// for the condition key, where "td/ns" would match every identity of
// trust domain "td"; Ward rejects it in both places.
func TrustDomainPattern(v string) error {
	switch n := strings.Count(v, "*"); {
	case v == "":
		return nil // reported as an empty value
	case n > 1:
		return fmt.Errorf("invalid trust domain %q: at most one '*' is allowed", v)
	case n == 1 && !strings.HasPrefix(v, "*") && !strings.HasSuffix(v, "*"):
		return fmt.Errorf("invalid trust domain %q: '*' is only allowed at the start or end", v)
	case strings.Contains(v, "/"):
		return fmt.Errorf("invalid trust domain %q: must not contain '/'", v)
	}
	return nil
}

// ServiceAccount checks an AuthorizationPolicy serviceAccounts entry:
// "<namespace>/<serviceaccount>" or a bare "<serviceaccount>" of the
// policy's namespace, with no wildcard (the API forbids any). The parts'
// DNS syntax is only a warning (ServiceAccountSyntax): Istio does not
// check it, and a name Kubernetes cannot create matches no identity.
func ServiceAccount(v string) error {
	if v == "" {
		return nil // reported as an empty value
	}
	if strings.Contains(v, "*") {
		return fmt.Errorf("invalid service account %q: no form of wildcard is allowed", v)
	}
	if len(v) > 320 {
		return fmt.Errorf("invalid service account %q: longer than 320 characters", v)
	}
	ns, sa, ok := strings.Cut(v, "/")
	if ok && (ns == "" || sa == "" || strings.Contains(sa, "/")) {
		return fmt.Errorf("invalid service account %q: want <namespace>/<name> or <name>", v)
	}
	return nil
}

// ServiceAccountSyntax reports a serviceAccounts entry whose namespace
// or name is not valid Kubernetes syntax, so it can never match.
func ServiceAccountSyntax(v string) error {
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = "", ns
	}
	if ok && !dns1123Label.MatchString(ns) {
		return fmt.Errorf("service account %q: namespace %q is not a DNS-1123 label, so it never matches", v, ns)
	}
	if len(sa) > 253 || !dns1123Subdomain.MatchString(sa) {
		return fmt.Errorf("service account %q: %q is not a valid service account name, so it never matches", v, sa)
	}
	return nil
}

func checkServiceAccount(e *errs, p, v string) {
	if err := ServiceAccount(v); err != nil {
		e.add(p, "%v", err)
		return
	}
	if err := ServiceAccountSyntax(v); v != "" && err != nil {
		e.warnCode(CodeStricter, p, "%v", err)
	}
}

func checkEmptyValues(e *errs, p string, vals []string) {
	for i, v := range vals {
		if v == "" {
			e.add(idx(p, i), "empty value not allowed")
		}
	}
}

// httpMethods are the standard HTTP methods (RFC 9110 and PATCH).
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}

// MethodTypo reports the standard HTTP method that m most likely
// misspells, or "" when m is a standard method, a "*" pattern or too far
// from any to be a typo. As in Istio, any non-empty method is valid —
// custom and WebDAV methods (PURGE, PROPFIND) are real — and methods
// match case-sensitively, so "get" or "GIT" would never match a GET
// request; analyzers warn about them.
func MethodTypo(m string) string {
	if m == "" || strings.Contains(m, "*") || slices.Contains(httpMethods, m) {
		return ""
	}
	return suggest(m, httpMethods)
}

func checkMethod(e *errs, p, m string) {
	if s := MethodTypo(m); s != "" {
		e.warnCode(CodeMethodTypo, p, "method %q looks like a typo of %s: methods match exactly and case-sensitively, so it never matches a %s request", m, s, s)
	}
}

// checkOperation validates one to.operation.
func checkOperation(e *errs, p string, op *security.Operation) {
	lists := []namedList{
		{"hosts", op.GetHosts()}, {"notHosts", op.GetNotHosts()},
		{"ports", op.GetPorts()}, {"notPorts", op.GetNotPorts()},
		{"methods", op.GetMethods()}, {"notMethods", op.GetNotMethods()},
		{"paths", op.GetPaths()}, {"notPaths", op.GetNotPaths()},
	}
	empty := true
	for _, l := range lists {
		if len(l.vals) == 0 {
			continue
		}
		empty = false
		lp := p + "." + l.name
		checkEmptyValues(e, lp, l.vals)
		for i, v := range l.vals {
			checkOperationValue(e, idx(lp, i), l.name, v)
		}
	}
	if empty {
		e.add(p, "to.operation must not be empty")
	}
}

func checkOperationValue(e *errs, p, field, v string) {
	if v == "" {
		return
	}
	switch field {
	case "ports", "notPorts":
		checkPolicyPort(e, p, v)
	case "methods", "notMethods":
		checkMethod(e, p, v)
	case "paths", "notPaths":
		checkErr(e, p, PathTemplate(v))
	}
}

func portString(v string) error {
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != v || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q (want a number in 1..65535)", v)
	}
	return nil
}

// checkPolicyPort checks a port in an operation or a destination.port
// condition. Istio accepts 0..65535; port 0 carries no traffic, so Ward
// accepts it with a warning that it never matches.
func checkPolicyPort(e *errs, p, v string) {
	if v == "0" {
		e.warnCode(CodeStricter, p, "port 0 never matches any traffic")
		return
	}
	checkErr(e, p, portString(v))
}

// condition keys Istio supports in `when`; keys ending in "[" take a
// bracketed name, e.g. request.headers[User-Agent].
var conditionKeys = map[string]string{
	"source.ip": "ip", "remote.ip": "ip", "destination.ip": "ip", "destination.port": "port",
	"source.namespace": "", "source.principal": "", "source.serviceAccount": "sa", "source.trustDomain": "td",
	"request.auth.principal": "", "request.auth.audiences": "", "request.auth.presenter": "",
	"connection.sni": "",
}

var mapConditionKeys = []string{"request.headers", "request.auth.claims"}

// ConditionKey checks an AuthorizationPolicy `when` key.
func ConditionKey(k string) error {
	if _, ok := conditionKeys[k]; ok {
		return nil
	}
	for _, prefix := range mapConditionKeys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		open := strings.Index(k, "[")
		if strings.HasSuffix(k, "]") && open > 0 && open < len(k)-2 {
			return nil
		}
		return fmt.Errorf("bad key %q: should have the form %s[name]", k, strings.TrimSuffix(prefix, "."))
	}
	switch {
	case strings.HasPrefix(k, "experimental.envoy.filters."):
		// Istio matches another Envoy filter's dynamic metadata in native
		// RBAC; Ward's ext_authz engine never sees that metadata, so the
		// condition cannot be enforced alike on every proxy (docs/config.md).
		return fmt.Errorf("attribute %s is not supported by Ward: Envoy filter metadata is not visible to its authorization engine", k)
	case k == "destination.namespace":
		return fmt.Errorf("attribute %s is replaced by metadata.namespace", k)
	case strings.HasPrefix(k, "destination.labels"):
		return fmt.Errorf("attribute %s is replaced by the workload selector", k)
	case k == "destination.name" || k == "destination.user":
		return fmt.Errorf("deprecated attribute %s: only supported in v1alpha1", k)
	}
	return fmt.Errorf("unknown attribute %q", k)
}

func checkCondition(e *errs, p string, w *security.Condition, custom bool) {
	if w == nil {
		e.add(p, "condition must not be null")
		return
	}
	k := w.GetKey()
	if k == "" {
		e.add(p+".key", "key must not be empty")
		return
	}
	if err := ConditionKey(k); err != nil {
		e.add(p+".key", "%v", err)
		return
	}
	if custom && (k == "source.namespace" || k == "source.principal" || k == "source.serviceAccount" || k == "source.trustDomain" || strings.HasPrefix(k, "request.auth.")) {
		e.add(p+".key", "%s is not supported with action CUSTOM", k)
	}
	if len(w.GetValues()) == 0 && len(w.GetNotValues()) == 0 {
		e.add(p, "at least one of values or notValues must be set for key %s", k)
	}
	checkConditionValues(e, p+".values", k, w.GetValues())
	checkConditionValues(e, p+".notValues", k, w.GetNotValues())
}

func checkConditionValues(e *errs, p, k string, vals []string) {
	checkEmptyValues(e, p, vals)
	for i, v := range vals {
		if v == "" {
			continue
		}
		switch conditionKeys[k] {
		case "ip":
			checkErr(e, idx(p, i), IPOrCIDR(v))
		case "port":
			checkPolicyPort(e, idx(p, i), v)
		case "sa":
			checkServiceAccount(e, idx(p, i), v)
		case "td":
			checkErr(e, idx(p, i), TrustDomainPattern(v))
		}
	}
}

func validatePeerAuthentication(c *mesh.Config, e *errs) {
	in, ok := c.Spec.(*security.PeerAuthentication)
	if !ok {
		wrongType(e, c, "*v1beta1.PeerAuthentication")
		return
	}
	checkWorkloadSelector(e, "spec.selector", in.GetSelector())
	checkMTLSMode(e, "spec.mtls.mode", in.GetMtls())
	if len(in.GetPortLevelMtls()) > 0 && len(in.GetSelector().GetMatchLabels()) == 0 {
		e.add("spec.portLevelMtls", "portLevelMtls requires a workload selector with labels (mesh- and namespace-wide policies cannot have port-level mTLS)")
	}
	for _, port := range sortedPorts(in.GetPortLevelMtls()) {
		p := key("spec.portLevelMtls", fmt.Sprint(port))
		if port < 1 || port > 65535 {
			e.add(p, "port %d must be in the range 1..65535", port)
		}
		if in.GetPortLevelMtls()[port] == nil {
			e.add(p, "port-level mTLS settings must not be null")
			continue
		}
		checkMTLSMode(e, p+".mode", in.GetPortLevelMtls()[port])
	}
}

func checkMTLSMode(e *errs, p string, m *security.PeerAuthentication_MutualTLS) {
	if m == nil {
		return
	}
	if _, ok := security.PeerAuthentication_MutualTLS_Mode_name[int32(m.GetMode())]; !ok {
		e.add(p, "invalid mode %d (want UNSET, DISABLE, PERMISSIVE or STRICT)", m.GetMode())
	}
}

func sortedPorts[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
