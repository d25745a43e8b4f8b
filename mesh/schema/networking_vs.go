package schema

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func init() { validators[mesh.KindVirtualService] = validateVirtualService }

// meshGateway is the reserved gateway name for sidecars.
const meshGateway = "mesh"

func validateVirtualService(c *mesh.Config, e *errs) {
	vs, ok := c.Spec.(*networking.VirtualService)
	if !ok {
		wrongType(e, c, "*v1alpha3.VirtualService")
		return
	}
	delegate := len(vs.GetHosts()) == 0
	if delegate {
		checkDelegateVS(e, vs)
	}
	for i, g := range vs.GetGateways() {
		addAll(e, idx("spec.gateways", i), GatewayName(g))
	}
	checkVSHosts(e, vs)
	if !appliesToGateway(vs) {
		checkNoClaimRouting(e, vs)
	}
	if len(vs.GetHttp())+len(vs.GetTcp())+len(vs.GetTls()) == 0 {
		e.add("spec", "http, tcp or tls must be provided in a virtual service")
	}
	for i, r := range vs.GetHttp() {
		p := idx("spec.http", i)
		if r == nil {
			e.add(p, "http route must not be null")
			continue
		}
		checkHTTPRoute(e, p, r, delegate)
	}
	for i, r := range vs.GetTls() {
		checkTLSRoute(e, idx("spec.tls", i), r, vs)
	}
	for i, r := range vs.GetTcp() {
		checkTCPRoute(e, idx("spec.tcp", i), r)
	}
	checkExportTo(e, c.Namespace, vs.GetExportTo(), false)
	warnUnreachable(e, vs)
}

func checkDelegateVS(e *errs, vs *networking.VirtualService) {
	if len(vs.GetGateways()) > 0 {
		e.add("spec.gateways", "a delegate virtual service (no hosts) must not specify gateways")
	}
	if len(vs.GetTls()) > 0 {
		e.add("spec.tls", "a delegate virtual service (no hosts) must not have tls routes")
	}
	if len(vs.GetTcp()) > 0 {
		e.add("spec.tcp", "a delegate virtual service (no hosts) must not have tcp routes")
	}
}

// checkNoClaimRouting rejects JWT claim matches ("@request.auth.claims.x")
// in a VirtualService that applies to sidecars: only gateways verify JWTs
// before routing.
func checkNoClaimRouting(e *errs, vs *networking.VirtualService) {
	for i, r := range vs.GetHttp() {
		for j, m := range r.GetMatch() {
			mp := idx(idx("spec.http", i)+".match", j)
			for _, f := range []struct {
				name string
				m    map[string]*networking.StringMatch
			}{{"headers", m.GetHeaders()}, {"withoutHeaders", m.GetWithoutHeaders()}} {
				for _, k := range sortedStrKeys(f.m) {
					if strings.HasPrefix(k, claimPrefix) {
						e.add(key(mp+"."+f.name, k), "JWT claim based routing (%s) is only supported for gateways, found gateways %v", k, vs.GetGateways())
					}
				}
			}
		}
	}
}

// appliesToGateway reports whether a VirtualService binds only to
// gateways (not to sidecars via "mesh").
func appliesToGateway(vs *networking.VirtualService) bool {
	if len(vs.GetGateways()) == 0 {
		return false
	}
	for _, g := range vs.GetGateways() {
		if g == meshGateway {
			return false
		}
	}
	return true
}

func checkVSHosts(e *errs, vs *networking.VirtualService) {
	gw := appliesToGateway(vs)
	valid := true
	for i, h := range vs.GetHosts() {
		p := idx("spec.hosts", i)
		if err := WildcardHost(h); err != nil {
			if !isIP(h) {
				e.add(p, "%v", err)
				valid = false
			}
		} else if !gw && h == "*" {
			e.add(p, "wildcard host * is not allowed for virtual services bound to the mesh")
			valid = false
		}
	}
	if !valid {
		return
	}
	hosts := vs.GetHosts()
	for i := range hosts {
		for j := i + 1; j < len(hosts); j++ {
			if hostMatches(hosts[i], hosts[j]) {
				e.add(idx("spec.hosts", j), "duplicate hosts in virtual service: %s & %s", hosts[i], hosts[j])
			}
		}
	}
}

// GatewayName checks a VirtualService gateway reference: "mesh",
// "<namespace>/<name>" or a legacy bare/FQDN name.
func GatewayName(g string) []error {
	ns, name, ok := strings.Cut(g, "/")
	if !ok {
		if err := FQDN(g); err != nil {
			return []error{fmt.Errorf("invalid gateway name %q: %v", g, err)}
		}
		return nil
	}
	var out []error
	if ns == "" || name == "" {
		out = append(out, fmt.Errorf("gateway %q: namespace and name cannot be empty", g))
	}
	if ns != "" && !dns1123Label.MatchString(ns) {
		out = append(out, fmt.Errorf("gateway %q: invalid namespace %q", g, ns))
	}
	if name != "" && !isDNSLabel(name) {
		out = append(out, fmt.Errorf("gateway %q: invalid name %q", g, name))
	}
	return out
}

func checkHTTPRoute(e *errs, p string, r *networking.HTTPRoute, delegateVS bool) {
	checkHTTPRouteConflict(e, p, r, delegateVS)
	for i, m := range r.GetMatch() {
		checkHTTPMatch(e, idx(p+".match", i), m)
	}
	checkHeaders(e, p+".headers", r.GetHeaders())
	checkCORS(e, p+".corsPolicy", r.GetCorsPolicy())
	checkFault(e, p+".fault", r.GetFault())
	if mp := r.GetMirrorPercent(); mp != nil {
		if mp.GetValue() > 100 {
			e.add(p+".mirrorPercent", "mirrorPercent must be at most 100, got %d", mp.GetValue())
		}
		e.warn(p+".mirrorPercent", "mirrorPercent is deprecated, use mirrorPercentage")
	}
	checkMirrorPercent(e, p+".mirrorPercentage", r.GetMirrorPercentage())
	if r.GetMirror() != nil {
		checkDestination(e, p+".mirror", r.GetMirror())
	}
	for i, m := range r.GetMirrors() {
		mp := idx(p+".mirrors", i)
		if m.GetDestination() == nil {
			e.add(mp+".destination", "destination is required for mirrors")
			continue
		}
		checkDestination(e, mp+".destination", m.GetDestination())
		checkMirrorPercent(e, mp+".percentage", m.GetPercentage())
	}
	checkRedirect(e, p+".redirect", r.GetRedirect())
	checkDirectResponse(e, p+".directResponse", r.GetDirectResponse())
	checkRetries(e, p+".retries", r.GetRetries())
	checkRewrite(e, p+".rewrite", r.GetRewrite())
	checkAuthorityRewrite(e, p, r)
	checkHTTPDestinations(e, p+".route", r.GetRoute())
	checkDuration(e, p+".timeout", r.GetTimeout())
	checkDelegate(e, p+".delegate", r.GetDelegate())
}

func checkHTTPRouteConflict(e *errs, p string, r *networking.HTTPRoute, delegateVS bool) {
	if delegateVS && r.GetDelegate() != nil {
		e.add(p+".delegate", "a delegate virtual service's route cannot delegate again")
	}
	if r.GetDelegate() != nil && !delegateVS {
		if r.GetRedirect() != nil {
			e.add(p+".redirect", "a route with delegate must not specify redirect")
		}
		if r.Route != nil {
			e.add(p+".route", "a route with delegate must not specify route")
		}
		return
	}
	switch {
	case r.GetRedirect() != nil:
		conflicts(e, p, "redirect", r, "route", "fault", "rewrite", "directResponse")
	case r.GetDirectResponse() != nil:
		conflicts(e, p, "directResponse", r, "route", "fault", "rewrite")
	case len(r.GetRoute()) == 0:
		e.add(p, "http route needs one of route, redirect or directResponse")
	}
	if r.GetMirror() != nil && len(r.GetMirrors()) > 0 {
		e.add(p+".mirrors", "cannot set both mirror and mirrors")
	}
}

func conflicts(e *errs, p, with string, r *networking.HTTPRoute, fields ...string) {
	set := map[string]bool{
		"route": len(r.GetRoute()) > 0, "fault": r.GetFault() != nil, "rewrite": r.GetRewrite() != nil,
		"directResponse": r.GetDirectResponse() != nil,
	}
	for _, f := range fields {
		if set[f] {
			e.add(p+"."+f, "http route cannot contain both %s and %s", f, with)
		}
	}
}

func checkDelegate(e *errs, p string, d *networking.Delegate) {
	if d == nil {
		return
	}
	// Istio does not check the reference; one that cannot name a
	// VirtualService only makes the route match nothing, so it is a
	// warning.
	if d.GetName() == "" {
		e.warnCode(CodeStricter, p+".name", "delegate name is empty: the route delegates to nothing")
	} else if len(d.GetName()) > 253 || !dns1123Subdomain.MatchString(d.GetName()) {
		e.warnCode(CodeStricter, p+".name", "delegate name %q is not a valid object name: the route delegates to nothing", d.GetName())
	}
	if ns := d.GetNamespace(); ns != "" && !dns1123Label.MatchString(ns) {
		e.warnCode(CodeStricter, p+".namespace", "delegate namespace %q is not a valid namespace: the route delegates to nothing", ns)
	}
}

func checkHTTPMatch(e *errs, p string, m *networking.HTTPMatchRequest) {
	if m == nil {
		return
	}
	for _, k := range sortedStrKeys(m.GetHeaders()) {
		hp := key(p+".headers", k)
		checkErr(e, hp, headerOrClaim(k))
		if m.GetHeaders()[k] == nil {
			e.add(hp, "header match must not be null")
			continue
		}
		checkStringMatch(e, hp, m.GetHeaders()[k], false)
	}
	for _, k := range sortedStrKeys(m.GetWithoutHeaders()) {
		hp := key(p+".withoutHeaders", k)
		checkErr(e, hp, headerOrClaim(k))
		if h := m.GetWithoutHeaders()[k]; h != nil && h.GetRegex() != "*" {
			checkStringMatch(e, hp, h, false)
		}
	}
	checkStringMatch(e, p+".uri", m.GetUri(), true)
	checkStringMatch(e, p+".scheme", m.GetScheme(), false)
	checkStringMatch(e, p+".method", m.GetMethod(), false)
	checkStringMatch(e, p+".authority", m.GetAuthority(), false)
	for _, k := range sortedStrKeys(m.GetQueryParams()) {
		checkStringMatch(e, key(p+".queryParams", k), m.GetQueryParams()[k], false)
	}
	if m.GetPort() != 0 {
		checkPort(e, p+".port", int64(m.GetPort()))
	}
	checkLabels(e, p+".sourceLabels", m.GetSourceLabels())
	for i, g := range m.GetGateways() {
		addAll(e, idx(p+".gateways", i), GatewayName(g))
	}
	if ns := m.GetSourceNamespace(); ns != "" && !dns1123Label.MatchString(ns) {
		e.add(p+".sourceNamespace", "invalid sourceNamespace %q", ns)
	}
}

const claimPrefix = "@request.auth.claims"

// headerOrClaim accepts a header name or Istio's JWT claim routing form
// "@request.auth.claims.<name>".
func headerOrClaim(name string) error {
	if c, ok := strings.CutPrefix(name, claimPrefix); ok && (strings.HasPrefix(c, ".") || strings.HasPrefix(c, "[")) && len(c) > 1 {
		return nil
	}
	return HeaderName(name)
}

func checkHeaders(e *errs, p string, h *networking.Headers) {
	if h == nil {
		return
	}
	checkHeaderOps(e, p+".request", h.GetRequest(), true)
	checkHeaderOps(e, p+".response", h.GetResponse(), false)
}

func checkHeaderOps(e *errs, p string, ops *networking.Headers_HeaderOperations, request bool) {
	if ops == nil {
		return
	}
	for _, f := range []struct {
		name string
		m    map[string]string
	}{{"set", ops.GetSet()}, {"add", ops.GetAdd()}} {
		for _, k := range sortedStrKeys(f.m) {
			hp := key(p+"."+f.name, k)
			checkErr(e, hp, headerOpName(k, request))
			checkErr(e, hp, HeaderValue(f.m[k]))
		}
	}
	for i, k := range ops.GetRemove() {
		checkErr(e, idx(p+".remove", i), headerOpName(k, false))
	}
}

// headerOpName checks a header that a route sets, adds or removes: not
// empty, not a pseudo-header, and not Host except as the request
// authority when setting.
func headerOpName(name string, allowAuthority bool) error {
	if name == "" {
		return fmt.Errorf("header name cannot be empty")
	}
	authority := strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
	if allowAuthority && authority {
		return nil
	}
	if strings.EqualFold(name, "host") {
		return fmt.Errorf("invalid header %q: cannot set Host header", name)
	}
	if strings.HasPrefix(name, ":") {
		return fmt.Errorf("invalid header %q: header cannot have \":\" prefix", name)
	}
	return nil
}

// HeaderValue checks a header value Envoy will accept: no control
// characters, and "%" only as "%%" or around a %COMMAND% or
// %COMMAND(args)%.
func HeaderValue(v string) error {
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("header value %q contains a control character", v)
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			i++
			continue
		}
		end := commandEnd(v, i+1)
		if end < 0 {
			return fmt.Errorf("header value %q: unterminated or empty %%COMMAND%% (use %%%% for a literal %%)", v)
		}
		i = end
	}
	return nil
}

// commandEnd returns the index of the "%" closing a command that starts at
// i, or -1.
func commandEnd(v string, i int) int {
	start := i
	for i < len(v) && (v[i] == '_' || v[i] >= 'A' && v[i] <= 'Z' || v[i] >= '0' && v[i] <= '9') {
		i++
	}
	if i == start {
		return -1
	}
	if i < len(v) && v[i] == '(' {
		c := strings.IndexByte(v[i:], ')')
		if c < 0 {
			return -1
		}
		i += c + 1
	}
	c := strings.IndexByte(v[i:], '%')
	if c < 0 {
		return -1
	}
	return i + c
}

func checkAuthorityRewrite(e *errs, p string, r *networking.HTTPRoute) {
	n := 0
	if r.GetRewrite().GetAuthority() != "" {
		n++
	}
	for _, m := range []map[string]string{r.GetHeaders().GetRequest().GetSet(), r.GetHeaders().GetRequest().GetAdd()} {
		for k := range m {
			if strings.EqualFold(k, ":authority") || strings.EqualFold(k, "host") {
				n++
			}
		}
	}
	if n > 1 {
		e.add(p+".headers.request", "the authority header cannot be set more than once (rewrite.authority and headers)")
	}
}

var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "CONNECT": true, "OPTIONS": true, "TRACE": true}

func checkCORS(e *errs, p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.GetAllowOrigins() {
		op := idx(p+".allowOrigins", i)
		if o.GetExact() == "" && o.GetPrefix() == "" && o.GetRegex() == "" {
			e.add(op, "allow origin must set a non-empty exact, prefix or regex")
			continue
		}
		checkStringMatch(e, op, o, false)
	}
	for i, m := range c.GetAllowMethods() {
		if !methods[m] {
			e.add(idx(p+".allowMethods", i), "%q is not a supported HTTP method", m)
		}
	}
	for _, f := range []struct {
		name string
		l    []string
	}{{"allowHeaders", c.GetAllowHeaders()}, {"exposeHeaders", c.GetExposeHeaders()}} {
		for i, h := range f.l {
			if h != "*" {
				checkErr(e, idx(p+"."+f.name, i), HeaderName(h))
			}
		}
	}
	if c.GetMaxAge() != nil {
		checkDuration(e, p+".maxAge", c.GetMaxAge())
		if c.GetMaxAge().GetNanos() > 0 {
			e.add(p+".maxAge", "maxAge is accurate only to seconds")
		}
	}
}

func checkFault(e *errs, p string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.GetAbort() == nil && f.GetDelay() == nil {
		e.add(p, "fault injection must have an abort and/or a delay")
	}
	if a := f.GetAbort(); a != nil {
		checkPercentage(e, p+".abort.percentage", a.GetPercentage())
		switch t := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			checkHTTPStatus(e, p+".abort.httpStatus", int64(t.HttpStatus))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[t.GrpcStatus] {
				e.add(p+".abort.grpcStatus", "gRPC status %q is not supported (want a code name such as NOT_FOUND or UNAVAILABLE)", t.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			e.add(p+".abort.http2Error", "HTTP/2 abort fault injection is not supported")
		default:
			e.warn(p+".abort", "abort configured, but error type not set")
		}
	}
	if d := f.GetDelay(); d != nil {
		checkPercentage(e, p+".delay.percentage", d.GetPercentage())
		if d.GetPercent() < 0 || d.GetPercent() > 100 {
			e.add(p+".delay.percent", "percent %d is not in range 0..100", d.GetPercent())
		}
		switch t := d.GetHttpDelayType().(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			checkDuration(e, p+".delay.fixedDelay", t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			e.add(p+".delay.exponentialDelay", "exponentialDelay is not supported")
		default:
			e.add(p+".delay", "delay must set fixedDelay")
		}
	}
}

var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true, "DEADLINE_EXCEEDED": true,
	"NOT_FOUND": true, "ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true,
	"FAILED_PRECONDITION": true, "ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true,
	"INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

func checkHTTPStatus(e *errs, p string, s int64) {
	if s < 200 || s > 599 {
		e.add(p, "HTTP status %d is not in range 200..599", s)
	}
}

// checkPercentage applies Istio's fault percentage rule: 0, or in
// [0.0001, 100].
func checkPercentage(e *errs, p string, pc *networking.Percent) {
	if pc == nil {
		return
	}
	v := pc.GetValue()
	if v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		e.add(p+".value", "percentage %v is neither 0 nor in range [0.0001, 100]", v)
	}
}

func checkMirrorPercent(e *errs, p string, pc *networking.Percent) {
	if pc != nil && (pc.GetValue() < 0 || pc.GetValue() > 100) {
		e.add(p+".value", "mirror percentage %v is not in range 0..100", pc.GetValue())
	}
}

func checkRedirect(e *errs, p string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.GetUri() == "" && r.GetAuthority() == "" && r.GetRedirectPort() == nil && r.GetScheme() == "" && r.GetPrefixRewrite() == "" {
		e.add(p, "redirect must specify uri, authority, scheme, port or prefixRewrite")
	}
	if r.GetUri() != "" && r.GetPrefixRewrite() != "" {
		e.add(p, "redirect cannot set both uri and prefixRewrite")
	}
	if c := r.GetRedirectCode(); c != 0 && (c < 300 || c > 399) {
		e.add(p+".redirectCode", "%d is not a valid redirect code (must be 3xx)", c)
	}
	if s := r.GetScheme(); s != "" && s != "http" && s != "https" {
		e.add(p+".scheme", "invalid redirect scheme %q (want http or https)", s)
	}
	if _, ok := r.GetRedirectPort().(*networking.HTTPRedirect_Port); ok {
		checkPort(e, p+".port", int64(r.GetPort()))
	}
}

// maxDirectBody is the largest directResponse body Istio accepts.
const maxDirectBody = 1 << 20

func checkDirectResponse(e *errs, p string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	checkHTTPStatus(e, p+".status", int64(d.GetStatus()))
	size := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes())
	if size > maxDirectBody {
		e.add(p+".body", "direct response body is %d bytes, must be less than 1MB", size)
	} else if size > 100<<10 {
		e.warn(p+".body", "large direct responses may impact control plane performance")
	}
}

var retryOn = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true, "retriable-headers": true,
	"envoy-ratelimited": true, "http3-post-connect-failure": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

func checkRetries(e *errs, p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.GetAttempts() < 0 {
		e.add(p+".attempts", "attempts cannot be negative, got %d", r.GetAttempts())
	}
	if r.GetAttempts() == 0 && (r.GetPerTryTimeout() != nil || r.GetRetryOn() != "" || r.GetRetryRemoteLocalities() != nil) {
		e.add(p, "retry policy configured while attempts is 0 (retries disabled)")
	}
	checkDuration(e, p+".perTryTimeout", r.GetPerTryTimeout())
	checkDuration(e, p+".backoff", r.GetBackoff())
	if r.GetRetryOn() == "" {
		return
	}
	for _, pol := range strings.Split(r.GetRetryOn(), ",") {
		pol = strings.TrimSpace(pol)
		if n, err := strconv.Atoi(pol); err == nil && n >= 100 && n <= 599 {
			continue
		}
		if !retryOn[pol] {
			e.add(p+".retryOn", "%q is not a valid retryOn policy", pol)
		}
	}
}

func checkRewrite(e *errs, p string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.GetUri() != "" && r.GetUriRegexRewrite() != nil {
		e.add(p, "rewrite may only contain one of uri or uriRegexRewrite")
	}
	if r.GetUri() == "" && r.GetUriRegexRewrite() == nil && r.GetAuthority() == "" {
		e.add(p, "rewrite must specify at least one of uri, uriRegexRewrite or authority")
	}
	if rr := r.GetUriRegexRewrite(); rr != nil {
		if rr.GetMatch() == "" || rr.GetRewrite() == "" {
			e.add(p+".uriRegexRewrite", "uriRegexRewrite requires both match and rewrite")
		}
		if rr.GetMatch() != "" {
			checkErr(e, p+".uriRegexRewrite.match", Regex(rr.GetMatch()))
		}
	}
}

func checkDestination(e *errs, p string, d *networking.Destination) {
	if d == nil {
		e.add(p, "destination is required")
		return
	}
	switch h := d.GetHost(); {
	case h == "":
		e.add(p+".host", "destination host is required")
	case h == "*":
		e.add(p+".host", "invalid destination host %q", h)
	default:
		checkErr(e, p+".host", WildcardHost(h))
	}
	if s := d.GetSubset(); s != "" && !isDNSLabel(s) {
		e.add(p+".subset", "invalid subset name %q", s)
	}
	if d.GetPort() != nil {
		checkPort(e, p+".port.number", int64(d.GetPort().GetNumber()))
	}
}

// checkHTTPDestinations applies Istio's weight rules: no negative weight
// and, with several destinations, not all zero. Istio normalises weights
// that do not add up to 100, so that is only a warning.
func checkHTTPDestinations(e *errs, p string, ds []*networking.HTTPRouteDestination) {
	var total int64
	for i, d := range ds {
		dp := idx(p, i)
		if d == nil {
			e.add(dp, "route destination must not be null")
			continue
		}
		checkDestination(e, dp+".destination", d.GetDestination())
		checkHeaders(e, dp+".headers", d.GetHeaders())
		if d.GetWeight() < 0 {
			e.add(dp+".weight", "weight %d must not be negative", d.GetWeight())
		}
		total += int64(d.GetWeight())
	}
	checkTotalWeight(e, p, len(ds), total)
}

func checkTotalWeight(e *errs, p string, n int, total int64) {
	if n > 1 && total == 0 {
		e.add(p, "total destination weight is 0: at least one of the %d destinations needs a weight", n)
	} else if n > 1 && total != 100 {
		e.warn(p, "destination weights add up to %d, not 100; they are treated as relative", total)
	}
}

func checkRouteDestinations(e *errs, p string, ds []*networking.RouteDestination) {
	var total int64
	for i, d := range ds {
		dp := idx(p, i)
		if d == nil {
			e.add(dp, "route destination must not be null")
			continue
		}
		checkDestination(e, dp+".destination", d.GetDestination())
		if d.GetWeight() < 0 {
			e.add(dp+".weight", "weight %d must not be negative", d.GetWeight())
		}
		total += int64(d.GetWeight())
	}
	checkTotalWeight(e, p, len(ds), total)
}

func checkTLSRoute(e *errs, p string, r *networking.TLSRoute, vs *networking.VirtualService) {
	if r == nil {
		e.add(p, "tls route must not be null")
		return
	}
	if len(r.GetMatch()) == 0 {
		e.add(p+".match", "tls route must have at least one match condition")
	}
	for i, m := range r.GetMatch() {
		mp := idx(p+".match", i)
		if m == nil {
			e.add(mp, "tls match must not be null")
			continue
		}
		if len(m.GetSniHosts()) == 0 {
			e.add(mp+".sniHosts", "tls match must have at least one SNI host")
		}
		for j, h := range m.GetSniHosts() {
			checkSNIHost(e, idx(mp+".sniHosts", j), h, vs)
		}
		checkL4Match(e, mp, m.GetDestinationSubnets(), m.GetPort(), m.GetSourceLabels(), m.GetGateways())
	}
	if len(r.GetRoute()) == 0 {
		e.add(p+".route", "tls route is required")
	}
	checkRouteDestinations(e, p+".route", r.GetRoute())
}

func checkSNIHost(e *errs, p, h string, vs *networking.VirtualService) {
	if err := WildcardHost(h); err != nil {
		if isIP(h) {
			e.warn(p, "using an IP address (%q) goes against the SNI spec; most clients do not support it", h)
			return
		}
		e.add(p, "%v", err)
		return
	}
	for _, vh := range vs.GetHosts() {
		if hostSubsetOf(h, vh) {
			return
		}
	}
	e.add(p, "SNI host %q is not a compatible subset of any of the virtual service hosts [%s]", h, strings.Join(vs.GetHosts(), ", "))
}

func checkTCPRoute(e *errs, p string, r *networking.TCPRoute) {
	if r == nil {
		e.add(p, "tcp route must not be null")
		return
	}
	for i, m := range r.GetMatch() {
		mp := idx(p+".match", i)
		if m == nil {
			e.add(mp, "tcp match must not be null")
			continue
		}
		checkL4Match(e, mp, m.GetDestinationSubnets(), m.GetPort(), m.GetSourceLabels(), m.GetGateways())
	}
	if len(r.GetRoute()) == 0 {
		e.add(p+".route", "tcp route is required")
	}
	checkRouteDestinations(e, p+".route", r.GetRoute())
}

func checkL4Match(e *errs, p string, subnets []string, port uint32, labels map[string]string, gateways []string) {
	checkIPs(e, p+".destinationSubnets", subnets)
	if port != 0 {
		checkPort(e, p+".port", int64(port))
	}
	checkLabels(e, p+".sourceLabels", labels)
	for i, g := range gateways {
		addAll(e, idx(p+".gateways", i), GatewayName(g))
	}
}

// warnUnreachable reports, as warnings, http/tcp/tls rules that can never
// match: a rule after a catch-all, or one whose every match repeats an
// earlier one.
func warnUnreachable(e *errs, vs *networking.VirtualService) {
	var http, tcp, tls [][]string
	for _, r := range vs.GetHttp() {
		var ms []string
		for _, m := range r.GetMatch() {
			c := &networking.HTTPMatchRequest{}
			if m != nil {
				c = proto.Clone(m).(*networking.HTTPMatchRequest)
				c.Name = "" // a name does not change what a match matches
			}
			ms = append(ms, protoKey(c))
		}
		http = append(http, ms)
	}
	for _, r := range vs.GetTcp() {
		tcp = append(tcp, matchKeys(r.GetMatch()))
	}
	for _, r := range vs.GetTls() {
		tls = append(tls, matchKeys(r.GetMatch()))
	}
	warnUnreachableRules(e, "spec.http", http)
	warnUnreachableRules(e, "spec.tcp", tcp)
	warnUnreachableRules(e, "spec.tls", tls)
}

func matchKeys[M proto.Message](ms []M) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, protoKey(m))
	}
	return out
}

// warnUnreachableRules takes each rule's match keys, in order.
func warnUnreachableRules(e *errs, p string, rules [][]string) {
	seen := map[string]int{}
	catchAll := -1
	for i, matches := range rules {
		rp := idx(p, i)
		if len(matches) == 0 {
			if catchAll >= 0 {
				e.warn(rp, "rule not used: only the last rule can have no matches (rule %d already matches everything)", catchAll)
			}
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range matches {
			if first, ok := seen[m]; ok {
				e.warn(idx(rp+".match", j), "match not used: duplicate of a match in rule %d", first)
				dups++
				continue
			}
			seen[m] = i
		}
		if dups == len(matches) {
			e.warn(rp, "rule not used: all matches used by prior rules")
		}
	}
}

// protoKey is a canonical encoding of m for comparing matches.
func protoKey(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
