package schema

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// This file holds the checks every kind shares: ports, host names, labels,
// selectors, durations, IPs and exportTo. Each takes the path of the field
// it checks and records violations in e; none stops at the first.

const unixPrefix = "unix://"

func checkPort(e *errs, p string, n int64) {
	if n < 1 || n > 65535 {
		e.add(p, "port number %d must be in the range 1..65535", n)
	}
}

// Istio's DNS-1123 label allows upper case (its hosts are matched
// case-insensitively); Kubernetes object names use the stricter form in
// validate.go.
var istioLabel = regexp.MustCompile(`^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
var wildcardLabel = regexp.MustCompile(`^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$`)

func isDNSLabel(s string) bool { return len(s) <= 63 && istioLabel.MatchString(s) }

// dnsLabels checks the dot-separated labels of domain (a trailing dot is
// allowed; the top-level label may not be all digits).
func dnsLabels(domain string) error {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return fmt.Errorf("domain name %q invalid (top level domain %q cannot be all-numeric)", domain, tld)
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" {
			return nil
		}
		if !isDNSLabel(l) {
			return fmt.Errorf("domain name %q invalid (label %q invalid)", domain, l)
		}
	}
	return nil
}

func dnsPreconditions(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("domain name %q too long (max 255)", name)
	}
	if name == "" {
		return fmt.Errorf("empty domain name not allowed")
	}
	return nil
}

// FQDN checks a fully-qualified domain name the way Istio does (short
// names like "reviews" pass: they are qualified by namespace later).
func FQDN(name string) error {
	if err := dnsPreconditions(name); err != nil {
		return err
	}
	return dnsLabels(name)
}

// WildcardHost checks a host that may start with a wildcard label:
// "*", "*.example.com", "*foo.example.com", "reviews.prod.svc.cluster.local".
func WildcardHost(name string) error {
	if err := dnsPreconditions(name); err != nil {
		return err
	}
	first, rest, more := strings.Cut(name, ".")
	if len(first) > 63 || !wildcardLabel.MatchString(first) {
		return fmt.Errorf("domain name %q invalid (label %q invalid)", name, first)
	}
	if more {
		return dnsLabels(rest)
	}
	return nil
}

func partialWildcard(host string) error {
	if strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.") {
		return fmt.Errorf("partial wildcard %q not allowed", host)
	}
	return nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// NamespacedHost checks a Sidecar egress or Gateway server host of the form
// "<namespace>/<dnsName>" where the namespace may be "*", "." or a
// namespace. Gateways also accept a bare dnsName or an IP. Sidecars also
// accept exclusions: the namespace prefixed with "~" ("~prod/*",
// "~./foo.example.com"; a bare "~" stands for "*", so "~/*" excludes
// everything).
func NamespacedHost(host string, gateway bool) []error {
	ns, name, ok := strings.Cut(host, "/")
	if !ok {
		if gateway {
			return hostPart(host, true)
		}
		return []error{fmt.Errorf("host %q must be of form namespace/dnsName", host)}
	}
	var out []error
	if (ns == "" || name == "") && ns != "~" {
		out = append(out, fmt.Errorf("namespace and dnsName in host %q cannot be empty", host))
	}
	if rest, excl := strings.CutPrefix(ns, "~"); excl && !gateway {
		ns = rest
		if ns == "" {
			ns = "*"
		}
	}
	special := ns == "*" || ns == "."
	if !special && ns != "" && !dns1123Label.MatchString(ns) {
		out = append(out, fmt.Errorf("invalid namespace %q in host %q", ns, host))
	}
	if name == "" {
		return out
	}
	return append(out, hostPart(name, gateway)...)
}

func hostPart(name string, gateway bool) []error {
	var out []error
	if name != "*" && !strings.Contains(name, ".") {
		out = append(out, fmt.Errorf("short name %q not allowed (must be a FQDN or *)", name))
	}
	if err := WildcardHost(name); err != nil && !(gateway && isIP(name)) {
		out = append(out, err)
	}
	if err := partialWildcard(name); err != nil {
		out = append(out, err)
	}
	return out
}

func addAll(e *errs, p string, list []error) {
	for _, err := range list {
		e.add(p, "%v", err)
	}
}

func checkErr(e *errs, p string, err error) {
	if err != nil {
		e.add(p, "%v", err)
	}
}

// hostMatches reports whether two hosts overlap: equal, or one is a
// wildcard covering the other.
func hostMatches(a, b string) bool {
	if a == b || a == "*" || b == "*" {
		return true
	}
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return false
}

// hostSubsetOf reports whether every name h matches is also matched by o.
func hostSubsetOf(h, o string) bool {
	if o == "*" || h == o {
		return true
	}
	if !strings.HasPrefix(o, "*") {
		return false
	}
	if strings.HasPrefix(h, "*") {
		return strings.HasSuffix(h[1:], o[1:])
	}
	return strings.HasSuffix(h, o[1:])
}

// IPOrCIDR checks "10.0.0.1", "10.0.0.0/8" or "2001:db8::/32".
func IPOrCIDR(s string) error {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not a valid CIDR block", s)
		}
		return nil
	}
	if !isIP(s) {
		return fmt.Errorf("%q is not a valid IP address", s)
	}
	return nil
}

func checkIPs(e *errs, p string, list []string) {
	for i, s := range list {
		checkErr(e, idx(p, i), IPOrCIDR(s))
	}
}

func unixAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("unix address must not be empty")
	}
	if strings.HasPrefix(addr, "@") {
		return nil
	}
	if !path.IsAbs(addr) || strings.HasSuffix(addr, "/") {
		return fmt.Errorf("unix address %q is not an absolute path to a file", addr)
	}
	return nil
}

// duration checks a proto duration the way Istio does: at least 1ms and a
// whole number of milliseconds.
func checkDuration(e *errs, p string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		e.add(p, "invalid duration: %v", err)
		return
	}
	v := d.AsDuration()
	if v < time.Millisecond {
		e.add(p, "duration %v must be at least 1ms", v)
	} else if v%time.Millisecond != 0 {
		e.add(p, "duration %v: only millisecond precision is supported", v)
	}
}

var (
	labelName  = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
)

// labelKey checks a Kubernetes qualified name: [prefix/]name.
func labelKey(k string) error {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		name, prefix = prefix, ""
	}
	if ok && (prefix == "" || len(prefix) > 253 || !dns1123Subdomain.MatchString(prefix)) {
		return fmt.Errorf("invalid label key %q: prefix must be a DNS-1123 subdomain", k)
	}
	if len(name) == 0 || len(name) > 63 || !labelName.MatchString(name) {
		return fmt.Errorf("invalid label key %q", k)
	}
	return nil
}

// checkLabels applies Kubernetes label syntax to a label map at p.
func checkLabels(e *errs, p string, labels map[string]string) {
	for _, k := range sortedStrKeys(labels) {
		if err := labelKey(k); err != nil {
			e.add(key(p, k), "%v", err)
		}
		if v := labels[k]; len(v) > 63 || !labelValue.MatchString(v) {
			e.add(key(p, k), "invalid label value %q", v)
		}
	}
}

// checkSelectorLabels applies the workload selector rules: no empty key,
// no wildcard in a key or value; an empty selector only warns.
func checkSelectorLabels(e *errs, p string, labels map[string]string) {
	if len(labels) == 0 {
		e.warn(p, "workload selector specified without labels")
	}
	for _, k := range sortedStrKeys(labels) {
		v := labels[k]
		switch {
		case k == "":
			e.add(key(p, k), "empty key is not supported in selector")
		case strings.Contains(k, "*") || strings.Contains(v, "*"):
			e.add(key(p, k), "wildcard is not supported in selector: %q", k+"="+v)
		}
	}
}

func checkWorkloadSelector(e *errs, p string, s *typev1beta1.WorkloadSelector) {
	if s != nil {
		checkSelectorLabels(e, p+".matchLabels", s.GetMatchLabels())
	}
}

// checkTargeting applies the rules shared by the policy kinds that may
// name their target: at most one of selector, targetRef, targetRefs, and
// each reference to a Service, ServiceEntry or Gateway by name in the
// policy's own namespace.
func checkTargeting(e *errs, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	if sel != nil {
		set++
	}
	if ref != nil {
		set++
	}
	if len(refs) > 0 {
		set++
	}
	if set > 1 {
		e.add("spec", "only one of selector, targetRef or targetRefs can be set")
	}
	checkWorkloadSelector(e, "spec.selector", sel)
	checkTargetRef(e, "spec.targetRef", ref)
	for i, r := range refs {
		checkTargetRef(e, idx("spec.targetRefs", i), r)
	}
}

var allowedTargetRefs = map[string]bool{
	"core/Service":                      true,
	"networking.istio.io/ServiceEntry":  true,
	"gateway.networking.k8s.io/Gateway": true,
}

func checkTargetRef(e *errs, p string, r *typev1beta1.PolicyTargetReference) {
	if r == nil {
		return
	}
	if r.GetName() == "" {
		e.add(p+".name", "targetRef name must be set")
	}
	if r.GetNamespace() != "" {
		e.add(p+".namespace", "cross-namespace targetRef %q is not supported", r.GetNamespace())
	}
	g := r.GetGroup()
	if g == "" {
		g = "core"
	}
	if !allowedTargetRefs[g+"/"+r.GetKind()] {
		e.add(p+".kind", "targetRef must be a Service, ServiceEntry or Gateway, got %s/%s", r.GetGroup(), r.GetKind())
	}
}

// checkExportTo applies Istio's exportTo rules: each entry "*", "." or a
// namespace (ServiceEntry also "~"), no duplicates, "*" and "~" alone.
func checkExportTo(e *errs, ns string, exportTo []string, serviceEntry bool) map[string]bool {
	seen := map[string]bool{}
	for i, x := range exportTo {
		p := idx("spec.exportTo", i)
		k := x
		if x == "." {
			k = ns
		}
		switch {
		case seen[k]:
			e.add(p, "duplicate entry %q in exportTo", x)
		case x == "*" || x == "." || (serviceEntry && x == "~") || isDNSLabel(x) && x == strings.ToLower(x):
			seen[k] = true
		default:
			e.add(p, "invalid exportTo value %q (want \"*\", \".\", a namespace%s)", x, map[bool]string{true: " or \"~\"", false: ""}[serviceEntry])
		}
	}
	if len(exportTo) > 1 && seen["*"] {
		e.add("spec.exportTo", "cannot have both public (*) and non-public exportTo values")
	}
	if len(exportTo) > 1 && seen["~"] {
		e.add("spec.exportTo", "cannot export to no one (~) and someone")
	}
	return seen
}

// validProtocol reports whether Istio knows a port protocol name; empty
// means "detect".
func validProtocol(p string) bool {
	return p == "" || mesh.ParseProtocol(p) != mesh.ProtocolUnknown || strings.EqualFold(p, "HTTP_PROXY")
}

func checkPortName(e *errs, p, name string) {
	if !isDNSLabel(name) {
		e.add(p, "invalid port name %q (must be a DNS-1123 label)", name)
	}
}

func sortedStrKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var validHeaderName = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// HeaderName checks an HTTP header name as Istio does for matches and
// JWT output headers.
func HeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("header name cannot be empty")
	}
	if !validHeaderName.MatchString(name) {
		return fmt.Errorf("header name %q is not a valid header name", name)
	}
	return nil
}
