package audit

import (
	"fmt"
	"sort"
	"strings"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

func (b *builder) jwt(w *mesh.Workload) {
	ras := authn.RequestAuthsFor(b.snap, proxyOf(w))
	if len(ras) == 0 {
		return
	}
	j := JWTWorkload{Namespace: w.Namespace, Workload: workloadName(w)}
	iss := map[string]string{}
	for _, c := range ras {
		j.Policies = append(j.Policies, keyName(c))
		if ra, ok := c.Spec.(*security.RequestAuthentication); ok {
			for _, r := range ra.GetJwtRules() {
				iss[r.GetIssuer()] = b.jwksHealth(r)
				b.jwksFinding(c, r, iss[r.GetIssuer()])
			}
		}
	}
	for i := range iss {
		j.Issuers = append(j.Issuers, i)
	}
	sort.Strings(j.Issuers)
	for _, i := range j.Issuers {
		j.JWKS = append(j.JWKS, IssuerHealth{Issuer: i, Status: iss[i]})
	}
	j.Required, j.RequiredBy = b.tokenRequired(w)
	if j.Required != "all" {
		b.add(Finding{Code: "JWT-NOT-REQUIRED", Severity: Medium, Category: "jwt", Object: objName(w),
			Message:  fmt.Sprintf("RequestAuthentication verifies tokens but a request without a token is accepted (token required by %s rules)", j.Required),
			Controls: []string{"NIST-800-207-T6", "PCI-DSS-8", "SOC2-CC6.6"}})
	}
	b.r.JWT = append(b.r.JWT, j)
}

// tokenRequired inspects the enforced ALLOW rules that apply to w: a rule
// requires a token when every one of its sources names requestPrincipals.
func (b *builder) tokenRequired(w *mesh.Workload) (string, []string) {
	total, req := 0, 0
	var by []string
	for _, c := range authz.PoliciesFor(b.snap, w.Namespace, w.Labels) {
		p, err := authz.FromConfig(c)
		if err != nil || c.DryRun() || p.Action != authz.ActionAllow {
			continue
		}
		for i, r := range p.Rules {
			total++
			if ruleNeedsToken(r) {
				req++
				by = append(by, p.RuleName(i))
			}
		}
	}
	switch {
	case total > 0 && req == total:
		return "all", by
	case req > 0:
		return "some", by
	}
	return "none", nil
}

// jwksHealth asks the resolver, when there is one, whether keys for the
// rule are available (inline jwks always are).
func (b *builder) jwksHealth(r *security.JWTRule) string {
	switch {
	case r.GetJwks() != "":
		return "ok (inline)"
	case b.in.Keys == nil && b.in.JWKS != nil:
		return serverHealth(b.in.JWKS, r)
	case b.in.Keys == nil:
		return "not checked (offline)"
	}
	if _, ok := b.in.Keys.JWKS(r.GetIssuer(), r.GetJwksUri()); ok {
		return "ok"
	}
	return "unavailable"
}

// serverHealth reads the control plane's status for the rule's key source.
func serverHealth(sts []jwks.Status, r *security.JWTRule) string {
	for _, s := range sts {
		if s.Issuer != r.GetIssuer() || s.JWKSURI != r.GetJwksUri() {
			continue
		}
		switch {
		case s.Available && s.LastError != "":
			return "ok (refresh failing: " + s.LastError + ")"
		case s.Available:
			return "ok"
		case s.LastError != "":
			return "unavailable: " + s.LastError
		}
		return "unavailable"
	}
	return "not tracked by the server"
}

// jwksFinding reports, once per RequestAuthentication and issuer, keys the
// control plane has not got: tokens from that issuer are rejected.
func (b *builder) jwksFinding(c *mesh.Config, r *security.JWTRule, health string) {
	if b.in.Keys != nil || !strings.HasPrefix(health, "unavailable") {
		return // with a resolver, authn reports it (AUTHN-JWKSUnavailable)
	}
	key := c.Key().String() + "|" + r.GetIssuer()
	if b.jwksSeen == nil {
		b.jwksSeen = map[string]bool{}
	}
	if b.jwksSeen[key] {
		return
	}
	b.jwksSeen[key] = true
	b.add(Finding{Code: "JWT-JWKS-UNAVAILABLE", Severity: High, Category: "jwt", Object: c.Key().String(),
		Message:  fmt.Sprintf("issuer %q: %s; every token from it is rejected", r.GetIssuer(), health),
		Controls: []string{"NIST-800-207-T6", "PCI-DSS-8", "SOC2-CC6.6"}})
}

func ruleNeedsToken(r authz.Rule) bool {
	if len(r.From) == 0 {
		return false
	}
	for _, conj := range r.From {
		found := false
		for _, m := range conj {
			if m.Attr == authz.AttrRequestPrincipal && !m.Not && len(m.Values) > 0 {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// authnFindings carries authn's own findings (ignored and duplicate
// PeerAuthentications, JWKS and RequestAuthentication problems).
func (b *builder) authnFindings() {
	for _, f := range authn.Findings(b.snap, b.in.Keys) {
		if b.in.Keys == nil && (f.Reason == authn.ReasonJWKSUnavailable || f.Reason == authn.ReasonJWKSStale) {
			continue // offline: key health is unknown, not unavailable
		}
		sev := map[authn.Severity]Severity{authn.SeverityError: High, authn.SeverityWarning: Medium, authn.SeverityInfo: Low}[f.Severity]
		ctl := []string{"NIST-800-207-T2", "PCI-DSS-4.2.1", "SOC2-CC6.7"}
		if f.Object.Kind == mesh.KindRequestAuthentication {
			ctl = []string{"NIST-800-207-T6", "PCI-DSS-8", "SOC2-CC6.6"}
		}
		b.add(Finding{Code: "AUTHN-" + string(f.Reason), Severity: sev, Category: "authn", Object: f.Object.String(), Message: f.Message, Controls: ctl})
	}
}

// authzFindings carries authz.Analyze (invalid policies, missing providers,
// HTTP rules on TCP ports).
func (b *builder) authzFindings() {
	for _, f := range authz.Analyze(b.snap) {
		sev, code := Medium, "AUTHZ-HTTP-ON-TCP"
		if f.Severity == authz.SeverityError {
			sev, code = High, "AUTHZ-INVALID"
		}
		b.add(Finding{Code: code, Severity: sev, Category: "authorization", Object: f.Key.String(), Message: f.Message,
			Controls: []string{"NIST-800-207-T3", "SOC2-CC6.1"}})
	}
}

func (b *builder) rejected() {
	for _, r := range b.in.Rejected {
		b.add(Finding{Code: "CONFIG-REJECTED", Severity: High, Category: "config", Object: "config", Message: r,
			Controls: []string{"NIST-800-207-T4", "SOC2-CC6.1"}})
	}
}

// readiness lists, per namespace, what still accepts or speaks plaintext.
func (b *builder) readiness() {
	byNS := map[string]*NamespaceReady{}
	var order []string
	for _, m := range b.r.MTLS {
		nr, ok := byNS[m.Namespace]
		if !ok {
			nr = &NamespaceReady{Namespace: m.Namespace, Mode: b.namespaceMode(m.Namespace)}
			byNS[m.Namespace] = nr
			order = append(order, m.Namespace)
		}
		if !m.HasIdentity {
			nr.Blockers = append(nr.Blockers, m.Workload+": no mesh identity (clients and server talk plaintext; enroll it first)")
		}
		for _, p := range m.Ports {
			if p.Plaintext && m.HasIdentity {
				nr.Blockers = append(nr.Blockers, fmt.Sprintf("%s:%d: %s accepts plaintext (%s)", m.Workload, p.Port, p.Mode, p.From))
			}
		}
	}
	b.observedBlockers(byNS)
	sort.Strings(order)
	for _, ns := range order {
		nr := byNS[ns]
		nr.Ready = len(nr.Blockers) == 0
		b.r.StrictReadiness = append(b.r.StrictReadiness, *nr)
	}
}

// observedBlockers adds the plaintext calls the records show into each
// namespace of the config: whatever the config says, these callers still
// send plaintext, and STRICT would break them.
func (b *builder) observedBlockers(byNS map[string]*NamespaceReady) {
	if b.r.Traffic == nil {
		return
	}
	for _, np := range b.r.Traffic.PlaintextByNamespace {
		nr := byNS[np.Namespace]
		if nr == nil {
			continue
		}
		for _, e := range np.Edges {
			nr.Blockers = append(nr.Blockers, fmt.Sprintf("observed: %s → %s over %s without mTLS, %d calls (last %s)",
				e.Source, e.Destination, e.Protocol, e.Allowed+e.Denied, e.LastSeen.Format("2006-01-02T15:04:05Z")))
		}
	}
}

// namespaceMode is the mode a workload with no labels gets in ns.
func (b *builder) namespaceMode(ns string) string {
	return authn.PeerPolicyFor(b.snap, ns, mesh.Labels{}).Mode.String()
}

func (b *builder) summary() {
	s := &b.r.Summary
	s.Findings = map[string]int{}
	ns := map[string]bool{}
	for _, m := range b.r.MTLS {
		ns[m.Namespace] = true
		s.Workloads++
		if !m.HasIdentity {
			s.NoIdentity++
		}
		if m.Dataplane == dataplaneAmbient {
			s.Ambient++
		}
		for _, p := range m.Ports {
			s.Ports++
			if p.Plaintext {
				s.PlaintextPorts++
			} else if p.Mode == authn.ModeStrict.String() {
				s.StrictPorts++
			}
		}
	}
	s.Namespaces = len(ns)
	for _, a := range b.r.Authz {
		if a.Open {
			s.OpenWorkloads++
		}
	}
	for _, f := range b.r.Findings {
		s.Findings[string(f.Severity)]++
	}
	s.Rejected = len(b.in.Rejected)
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Message < b.Message
	})
}

func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	days := int(d / (24 * time.Hour))
	var s string
	if days > 0 {
		s = fmt.Sprintf("%dd", days)
	} else {
		s = strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	if neg {
		return "expired " + s + " ago"
	}
	return s
}
