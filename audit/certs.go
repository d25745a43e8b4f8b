package audit

import (
	"fmt"

	"github.com/wardmesh/ward/ca"
)

// noIssuance explains the empty issued-certificate list.
const noIssuance = "the CA keeps no issuance records: issued workload certificates cannot be listed; only roots and the signer are reported"

func (b *builder) certs() {
	c := &b.r.Certificates
	c.Issued = []CertInfo{}
	if b.in.CA == nil {
		c.Note = "no CA state found (give --server or --ca-state; with --kube, the ward-ca Secret): certificate inventory not audited"
		return
	}
	st := b.in.CA
	c.Available, c.Phase, c.Mode, c.Note = true, st.Phase, st.Mode, noIssuance
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
