package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
)

// noIssuance explains a missing issued-certificate list.
const noIssuance = "no issuance records were read (the server does not serve /debug/ca/issued, or the CA state came from the Kubernetes Secret, where each replica keeps its own records in memory: give --server): issued workload certificates not listed"

// maxIdentityFindings is how many identities get a CERT-EXPIRING finding
// of their own; the rest share one grouped finding.
const maxIdentityFindings = 10

// renewalOverdue is the fraction of a certificate's lifetime after which
// its identity should hold a newer one (agents renew at half).
const renewalOverdue = 0.75

func (b *builder) certs() {
	c := &b.r.Certificates
	c.Issued = []IssuedCertInfo{}
	if b.in.CA == nil {
		c.Note = "no CA state found (give --server or --ca-state; with --kube, the ward-ca Secret): certificate inventory not audited"
		return
	}
	st := b.in.CA
	c.Available, c.Phase, c.Mode = true, st.Phase, st.Mode
	for _, r := range st.Roots {
		ci := b.cert(r.CertStatus, r.Signing)
		c.Roots = append(c.Roots, ci)
		b.expiryFinding("root", ci)
	}
	if st.Signer.Serial != "" {
		s := b.cert(st.Signer, true)
		c.Signer = &s
		b.expiryFinding("signer", s)
	}
	if st.Issued == nil {
		c.Note = noIssuance
		return
	}
	b.issued(st.Issued)
}

func (b *builder) cert(s ca.CertStatus, signing bool) CertInfo {
	left := s.NotAfter.Sub(b.in.Now)
	return CertInfo{Subject: s.Subject, Serial: s.Serial, NotAfter: s.NotAfter.UTC(), Signing: signing,
		ExpiresIn: humanDuration(left), Expiring: left < b.in.ExpiryThreshold}
}

func (b *builder) expiryFinding(what string, c CertInfo) {
	if !c.Expiring {
		return
	}
	b.add(Finding{Code: "CERT-EXPIRING", Severity: High, Category: "certificates", Object: fmt.Sprintf("%s %s (serial %s)", what, c.Subject, c.Serial),
		Message:  fmt.Sprintf("expires %s (%s), within the %s threshold", c.NotAfter.Format("2006-01-02"), c.ExpiresIn, humanDuration(b.in.ExpiryThreshold)),
		Controls: []string{"NIST-800-207-T5", "PCI-DSS-4.2.1", "SOC2-CC6.7"}})
}

// issued lists the unexpired issued certificates, soonest expiry first,
// counts them per namespace and flags identities whose certificate is
// about to expire without having been renewed.
func (b *builder) issued(rep *ca.IssuedReport) {
	c := &b.r.Certificates
	sum := &IssuedSummary{Scope: rep.Scope, PerNamespace: []NamespaceCerts{}}
	perNS := map[string]*NamespaceCerts{}
	newest := map[string]ca.IssuedCert{} // per identity, the latest expiry
	for _, r := range rep.Certificates {
		if !b.in.Now.Before(r.NotAfter) {
			continue
		}
		ci := b.issuedCert(r)
		c.Issued = append(c.Issued, ci)
		n := perNS[ci.Namespace]
		if n == nil {
			n = &NamespaceCerts{Namespace: ci.Namespace}
			perNS[ci.Namespace] = n
		}
		n.Certificates++
		if ci.Expiring {
			n.ExpiringSoon++
			sum.ExpiringSoon++
		}
		if old, ok := newest[r.SPIFFEID]; !ok {
			n.Identities++
			newest[r.SPIFFEID] = r
		} else if r.NotAfter.After(old.NotAfter) {
			newest[r.SPIFFEID] = r
		}
	}
	slices.SortStableFunc(c.Issued, func(x, y IssuedCertInfo) int {
		return cmp.Or(x.NotAfter.Compare(y.NotAfter), cmp.Compare(x.SPIFFEID, y.SPIFFEID), cmp.Compare(x.Serial, y.Serial))
	})
	for _, n := range perNS {
		sum.PerNamespace = append(sum.PerNamespace, *n)
	}
	slices.SortFunc(sum.PerNamespace, func(x, y NamespaceCerts) int { return cmp.Compare(x.Namespace, y.Namespace) })
	sum.Total, sum.Identities = len(c.Issued), len(newest)
	c.IssuedSummary = sum
	b.renewalFindings(newest)
}

func (b *builder) issuedCert(r ca.IssuedCert) IssuedCertInfo {
	left := r.NotAfter.Sub(b.in.Now)
	ci := IssuedCertInfo{SPIFFEID: r.SPIFFEID, Serial: r.Serial, IssuedAt: r.IssuedAt.UTC(), NotAfter: r.NotAfter.UTC(),
		ExpiresIn: humanDuration(left), Expiring: left < b.in.ExpiryThreshold, Method: r.Method}
	if id, err := mesh.ParseIdentity(r.SPIFFEID); err == nil {
		ci.Namespace, ci.ServiceAccount = id.Namespace, id.ServiceAccount
	}
	return ci
}

// renewalFindings raises CERT-EXPIRING for identities that workloads in
// the snapshot still use whose newest certificate expires within the
// threshold and is past renewalOverdue of its lifetime: the agent is not
// renewing it. Short-lived certificates that are renewed on schedule, and
// identities no workload uses any more, raise nothing.
func (b *builder) renewalFindings(newest map[string]ca.IssuedCert) {
	inUse := map[string]bool{}
	for _, m := range b.r.MTLS {
		if m.HasIdentity {
			inUse[m.Identity] = true
		}
	}
	var due []ca.IssuedCert
	for id, r := range newest {
		life := r.NotAfter.Sub(r.NotBefore)
		renewBy := r.NotBefore.Add(time.Duration(float64(life) * renewalOverdue))
		if inUse[id] && r.NotAfter.Sub(b.in.Now) < b.in.ExpiryThreshold && b.in.Now.After(renewBy) {
			due = append(due, r)
		}
	}
	slices.SortFunc(due, func(x, y ca.IssuedCert) int {
		return cmp.Or(x.NotAfter.Compare(y.NotAfter), cmp.Compare(x.SPIFFEID, y.SPIFFEID))
	})
	for i, r := range due {
		if i == maxIdentityFindings && len(due) > maxIdentityFindings+1 {
			b.groupedRenewalFinding(due[i:])
			return
		}
		b.add(b.renewalFinding(r))
	}
}

func (b *builder) renewalFinding(r ca.IssuedCert) Finding {
	left := r.NotAfter.Sub(b.in.Now)
	return Finding{Code: "CERT-EXPIRING", Severity: High, Category: "certificates",
		Object: fmt.Sprintf("workload identity %s (serial %s)", r.SPIFFEID, r.Serial),
		Message: fmt.Sprintf("its newest certificate expires %s (%s), within the %s threshold, and has not been renewed past %d%% of its lifetime: check the workload's agent",
			r.NotAfter.UTC().Format("2006-01-02T15:04Z"), humanDuration(left), humanDuration(b.in.ExpiryThreshold), int(renewalOverdue*100)),
		Controls: []string{"NIST-800-207-T5", "PCI-DSS-4.2.1", "SOC2-CC6.7"}}
}

func (b *builder) groupedRenewalFinding(rest []ca.IssuedCert) {
	ids := make([]string, 0, 3)
	for _, r := range rest[:min(3, len(rest))] {
		ids = append(ids, r.SPIFFEID)
	}
	f := b.renewalFinding(rest[0])
	f.Object = fmt.Sprintf("%d more workload identities (%s, …)", len(rest), strings.Join(ids, ", "))
	f.Message = fmt.Sprintf("their newest certificates expire within the %s threshold (the first %s) and have not been renewed past %d%% of their lifetime: see certificates.issued",
		humanDuration(b.in.ExpiryThreshold), rest[0].NotAfter.UTC().Format("2006-01-02T15:04Z"), int(renewalOverdue*100))
	b.add(f)
}
