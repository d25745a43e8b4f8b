package audit

import (
	"fmt"
	"sort"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// DefaultExpiryThreshold flags certificates expiring within 30 days.
const DefaultExpiryThreshold = 30 * 24 * time.Hour

// Build computes the report. It does no I/O.
func Build(in Input) *Report {
	if in.ExpiryThreshold <= 0 {
		in.ExpiryThreshold = DefaultExpiryThreshold
	}
	b := &builder{in: in, snap: in.Snapshot, r: &Report{Schema: SchemaVersion, GeneratedAt: in.Now.UTC(), Source: in.Source}}
	for _, w := range workloads(b.snap) {
		b.mtls(w)
		b.authz(w)
		b.jwt(w)
	}
	b.policies()
	b.authnFindings()
	b.authzFindings()
	b.certs()
	b.decisions()
	b.traffic()
	b.rejected()
	b.readiness()
	b.summary()
	sortFindings(b.r.Findings)
	return b.r
}

type builder struct {
	in   Input
	snap *mesh.Snapshot
	r    *Report
	// selects counts workloads per AuthorizationPolicy key.
	selects map[mesh.Key]int
	// jwksSeen dedups JWKS findings by object and issuer.
	jwksSeen map[string]bool
}

func (b *builder) add(f Finding) { b.r.Findings = append(b.r.Findings, f) }

// workloads returns the snapshot's workloads sorted by namespace and name.
func workloads(snap *mesh.Snapshot) []*mesh.Workload {
	ws := append([]*mesh.Workload(nil), snap.Workloads()...)
	sort.SliceStable(ws, func(i, j int) bool {
		if ws[i].Namespace != ws[j].Namespace {
			return ws[i].Namespace < ws[j].Namespace
		}
		return workloadName(ws[i]) < workloadName(ws[j])
	})
	return ws
}

// workloadName is the WorkloadEntry name, or source@address for inline
// ServiceEntry endpoints.
func workloadName(w *mesh.Workload) string {
	if w.Name != "" {
		return w.Name
	}
	return w.Source.Name + "@" + w.Address
}

func objName(w *mesh.Workload) string { return w.Namespace + "/" + workloadName(w) }

// proxyOf is the sidecar proxy the translators would see for w.
func proxyOf(w *mesh.Workload) *mesh.Proxy {
	return &mesh.Proxy{ID: workloadName(w) + "." + w.Namespace, Type: mesh.ProxySidecar, Namespace: w.Namespace,
		Labels: w.Labels, ServiceAccount: w.ServiceAccount, IPs: []string{w.Address}}
}

// inboundPorts are the workload's target ports from the services that
// select it, plus ports with a port-level mTLS setting.
func inboundPorts(snap *mesh.Snapshot, w *mesh.Workload, pp authn.PeerPolicy) []uint32 {
	set := map[uint32]bool{}
	for _, s := range snap.ServicesForWorkload(w.Namespace, w.Labels) {
		for _, p := range s.Ports {
			t := p.TargetPort
			if t == 0 {
				t = p.Number
			}
			if n, ok := w.Ports[p.Name]; ok && n != 0 {
				t = n
			}
			set[t] = true
		}
	}
	for _, p := range pp.Ports() {
		set[p] = true
	}
	out := make([]uint32, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func keyName(c *mesh.Config) string {
	if c == nil {
		return ""
	}
	return c.Namespace + "/" + c.Name
}

// modeFrom says which policy decided the mode on port: the most specific
// winning policy (authn composes UNSET levels by inheritance).
func modeFrom(pp authn.PeerPolicy, port uint32) string {
	if _, ok := pp.PerPort[port]; ok && pp.Workload != nil {
		return "port-level " + keyName(pp.Workload)
	}
	switch {
	case pp.Workload != nil:
		return "workload " + keyName(pp.Workload)
	case pp.Namespace != nil:
		return "namespace " + keyName(pp.Namespace)
	case pp.Mesh != nil:
		return "mesh " + keyName(pp.Mesh)
	}
	return "default"
}

func (b *builder) mtls(w *mesh.Workload) {
	pp := authn.PeerPolicyFor(b.snap, w.Namespace, w.Labels)
	m := MTLSWorkload{Namespace: w.Namespace, Workload: workloadName(w), Dataplane: dataplaneOf(w),
		Mode: pp.Mode.String(), MeshPolicy: keyName(pp.Mesh), NamespacePolicy: keyName(pp.Namespace), WorkloadPolicy: keyName(pp.Workload)}
	m.HasIdentity = m.Dataplane != dataplaneNone
	if m.HasIdentity {
		m.Identity = w.Identity(b.snap.Mesh().TrustDomain).String()
	} else {
		b.add(Finding{Code: "MTLS-NO-IDENTITY", Severity: High, Category: "mtls", Object: objName(w),
			Message:  "workload has no mesh identity (not enrolled: no security.istio.io/tlsMode=istio sidecar, no istio.io/dataplane-mode=ambient): it talks plaintext and cannot be authenticated",
			Controls: []string{"NIST-800-207-T2", "NIST-800-207-T6", "PCI-DSS-4.2.1", "PCI-DSS-8", "SOC2-CC6.1", "SOC2-CC6.7"}})
	}
	for _, f := range pp.Ignored {
		m.Ignored = append(m.Ignored, f.String())
	}
	proxy := proxyOf(w)
	for _, port := range inboundPorts(b.snap, w, pp) {
		mode := authn.EffectiveMode(b.snap, w.Namespace, w.Labels, port)
		mp := MTLSPort{Port: port, Protocol: string(authn.PortProtocol(b.snap, proxy, port)), Mode: mode.String(),
			From: modeFrom(pp, port), Plaintext: mode.AcceptsPlaintext() || !m.HasIdentity}
		m.Ports = append(m.Ports, mp)
		b.plaintextFinding(w, mp, mode)
	}
	b.r.MTLS = append(b.r.MTLS, m)
}

// Data planes of MTLSWorkload.Dataplane.
const (
	dataplaneSidecar = "sidecar"
	dataplaneAmbient = "ambient"
	dataplaneNone    = "none"
)

// dataplaneOf says how w is in the mesh. An ambient workload's node proxy
// holds its identity and speaks mTLS (HBONE) to every ambient peer, as
// Istio's ztunnel does; its effective PeerAuthentication decides whether
// plaintext callers are refused (STRICT) or accepted.
func dataplaneOf(w *mesh.Workload) string {
	switch {
	case w.Ambient():
		return dataplaneAmbient
	case w.TLSMode() == mesh.TLSModeIstio:
		return dataplaneSidecar
	}
	return dataplaneNone
}

func (b *builder) plaintextFinding(w *mesh.Workload, p MTLSPort, mode authn.Mode) {
	if !mode.AcceptsPlaintext() {
		return
	}
	sev := Medium
	if mode == authn.ModeDisable {
		sev = High
	}
	b.add(Finding{Code: "MTLS-PLAINTEXT-PORT", Severity: sev, Category: "mtls", Object: fmt.Sprintf("%s:%d", objName(w), p.Port),
		Message:  fmt.Sprintf("port %d accepts plaintext (mode %s from %s)", p.Port, mode, p.From),
		Controls: []string{"NIST-800-207-T2", "PCI-DSS-4.2.1", "SOC2-CC6.7"}})
}

func (b *builder) authz(w *mesh.Workload) {
	a := AuthzWorkload{Namespace: w.Namespace, Workload: workloadName(w), Open: true}
	if b.selects == nil {
		b.selects = map[mesh.Key]int{}
	}
	for _, c := range authz.PoliciesFor(b.snap, w.Namespace, w.Labels) {
		b.selects[c.Key()]++
		name := keyName(c)
		if c.DryRun() {
			a.DryRun = append(a.DryRun, name)
			continue
		}
		switch actionOf(c) {
		case security.AuthorizationPolicy_ALLOW:
			a.Allow = append(a.Allow, name)
			a.Open = false
		case security.AuthorizationPolicy_DENY:
			a.Deny = append(a.Deny, name)
		case security.AuthorizationPolicy_CUSTOM:
			a.Custom = append(a.Custom, name)
		case security.AuthorizationPolicy_AUDIT:
			a.Audit = append(a.Audit, name)
		}
	}
	if a.Open {
		b.add(Finding{Code: "AUTHZ-NO-ALLOW-POLICY", Severity: High, Category: "authorization", Object: objName(w),
			Message:  "no enforced ALLOW policy applies: any caller in the mesh that no DENY policy stops is allowed",
			Controls: []string{"NIST-800-207-T3", "NIST-800-207-T4", "SOC2-CC6.1"}})
	}
	b.r.Authz = append(b.r.Authz, a)
}

func actionOf(c *mesh.Config) security.AuthorizationPolicy_Action {
	if p, ok := c.Spec.(*security.AuthorizationPolicy); ok {
		return p.GetAction()
	}
	return security.AuthorizationPolicy_ALLOW
}

func (b *builder) policies() {
	for _, c := range b.snap.All(mesh.KindAuthorizationPolicy) {
		pi := PolicyInfo{Policy: keyName(c), Action: actionOf(c).String(), DryRun: c.DryRun(), Workloads: b.selects[c.Key()]}
		p, err := authz.FromConfig(c)
		if err != nil {
			pi.Invalid = err.Error()
		} else {
			pi.Rules = len(p.Rules)
			pi.AllowAll = p.Action == authz.ActionAllow && hasMatchAll(p)
			pi.WildcardPrincipals = p.Action == authz.ActionAllow && hasWildcardPrincipal(p)
		}
		b.policyFindings(c, pi)
		b.r.Policies = append(b.r.Policies, pi)
	}
}

func (b *builder) policyFindings(c *mesh.Config, pi PolicyInfo) {
	obj := "AuthorizationPolicy " + pi.Policy
	if pi.Workloads == 0 {
		b.add(Finding{Code: "AUTHZ-SELECTS-NOTHING", Severity: Low, Category: "authorization", Object: obj,
			Message: "policy applies to no workload", Controls: []string{"SOC2-CC6.1"}})
	}
	if pi.AllowAll {
		b.add(Finding{Code: "AUTHZ-ALLOW-ALL", Severity: Medium, Category: "authorization", Object: obj,
			Message: "an ALLOW rule matches every request", Controls: []string{"NIST-800-207-T3", "SOC2-CC6.1"}})
	}
	if pi.WildcardPrincipals {
		b.add(Finding{Code: "AUTHZ-WILDCARD-PRINCIPAL", Severity: Medium, Category: "authorization", Object: obj,
			Message: `a rule accepts any principal ("*")`, Controls: []string{"NIST-800-207-T3", "PCI-DSS-8", "SOC2-CC6.1"}})
	}
	if pi.DryRun {
		b.add(Finding{Code: "AUTHZ-DRY-RUN-PENDING", Severity: Low, Category: "authorization", Object: obj,
			Message: "dry-run policy is not enforced yet", Controls: []string{"NIST-800-207-T4"}})
	}
}

// hasMatchAll reports a rule with no conditions: it matches everything.
func hasMatchAll(p *authz.Policy) bool {
	for _, r := range p.Rules {
		if len(r.From) == 0 && len(r.To) == 0 && len(r.When) == 0 {
			return true
		}
	}
	return false
}

func hasWildcardPrincipal(p *authz.Policy) bool {
	for _, r := range p.Rules {
		for _, conj := range r.From {
			for _, m := range conj {
				if m.Not || (m.Attr != authz.AttrPrincipal && m.Attr != authz.AttrRequestPrincipal) {
					continue
				}
				for _, v := range m.Values {
					if v == "*" {
						return true
					}
				}
			}
		}
	}
	return false
}
