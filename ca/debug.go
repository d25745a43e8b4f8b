package ca

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"time"
)

// Status is the CA's state as shown by /debug/ca.
type Status struct {
	TrustDomain     string       `json:"trustDomain"`
	Mode            string       `json:"mode"` // self-signed or plugin
	Phase           string       `json:"phase"`
	Signer          CertStatus   `json:"signer"`
	ChainNotAfter   time.Time    `json:"chainNotAfter"`
	Roots           []RootStatus `json:"roots"`
	DefaultTTL      string       `json:"defaultTTL"`
	MaxTTL          string       `json:"maxTTL"`
	RotationOverlap string       `json:"rotationOverlap"`
	// PendingRotation is a `ward ca rotate` request not applied yet: one
	// waiting for the next reconcile, or one a stopped run picked up but
	// never saved (it is applied at the next start).
	PendingRotation *PendingRotation `json:"pendingRotation,omitempty"`
	// Issued is never set by Status and /debug/ca (the issuance records
	// can run to MaxIssuedRecords; /debug/ca/issued serves them): readers
	// that fetch or load them (ward audit --server, --ca-state) attach
	// them here. Nil means no records were read.
	Issued *IssuedReport `json:"issued,omitempty"`
}

// PendingRotation is a rotation request still on disk.
type PendingRotation struct {
	ID        string    `json:"id"`
	Requested time.Time `json:"requested"`
	Error     string    `json:"error,omitempty"` // the request file is unreadable
}

// CertStatus names one certificate.
type CertStatus struct {
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// RootStatus is one root in the bundle and its rotation times.
type RootStatus struct {
	CertStatus
	Signing     bool      `json:"signing"`
	SwitchAt    time.Time `json:"switchAt,omitzero"`
	DropAt      time.Time `json:"dropAt,omitzero"`
	IssuedUntil time.Time `json:"issuedUntil,omitzero"`
}

// Status reports the current signer, bundle and rotation phase.
func (c *CA) Status() Status {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	a := c.current()
	st := Status{
		TrustDomain: c.cfg.TrustDomain, Mode: "self-signed", Phase: c.phase(),
		Signer: certStatus(a.signer), ChainNotAfter: a.notAfter,
		DefaultTTL: c.cfg.DefaultTTL.String(), MaxTTL: c.cfg.MaxTTL.String(), RotationOverlap: c.cfg.RotationOverlap.String(),
	}
	if c.state == nil {
		st.Mode = "plugin"
	}
	st.PendingRotation = c.pendingRotationStatus()
	for i, r := range a.roots {
		rs := RootStatus{CertStatus: certStatus(r), Signing: r.Equal(a.signingRoot)}
		if c.state != nil && i < len(c.state.Roots) {
			s := c.state.Roots[i]
			rs.SwitchAt, rs.DropAt, rs.IssuedUntil = s.SwitchAt, s.DropAt, s.IssuedUntil
		}
		st.Roots = append(st.Roots, rs)
	}
	return st
}

func (c *CA) pendingRotationStatus() *PendingRotation {
	if c.cfg.PluginDir != "" {
		return nil
	}
	req, err := pendingRotation(c.cfg.StateDir)
	if err != nil {
		return &PendingRotation{Error: err.Error()}
	}
	if req == nil {
		return nil
	}
	return &PendingRotation{ID: req.id(), Requested: req.Requested}
}

func certStatus(c *x509.Certificate) CertStatus {
	return CertStatus{Subject: c.Subject.String(), Serial: c.SerialNumber.Text(16), NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// DebugHandler serves Status as JSON, for /debug/ca.
func (c *CA) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(c.Status())
	})
}
