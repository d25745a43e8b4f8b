package ca

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// IssuedReport is the JSON of /debug/ca/issued.
type IssuedReport struct {
	GeneratedAt time.Time `json:"generatedAt"`
	// Scope is ScopeState (every certificate issued with this CA state)
	// or ScopeProcess (only this process's, e.g. one Kubernetes replica).
	Scope        string       `json:"scope"`
	Count        int          `json:"count"`
	Certificates []IssuedCert `json:"certificates"`
}

// openIssuanceLog installs the default log when none is configured and
// registers the gauge of unexpired issued certificates.
func (c *CA) openIssuanceLog() error {
	if c.cfg.IssuanceLog == nil {
		lc := LogConfig{MaxRecords: c.cfg.MaxIssuedRecords, Clock: c.clock, Log: c.log, Metrics: c.cfg.Metrics}
		var err error
		if c.cfg.localState {
			path := IssuedLogPath(c.cfg.StateDir)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("issuance log: %w", err)
			}
			c.cfg.IssuanceLog, err = OpenFileLog(path, lc)
		} else {
			c.cfg.IssuanceLog, err = NewMemoryLog(lc)
		}
		if err != nil {
			return err
		}
	}
	return c.cfg.Metrics.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ward_ca_issued_certificates", Help: "Unexpired certificates in the CA's issuance log.",
	}, func() float64 { return float64(len(c.Issued(c.clock.Now()))) }))
}

// record keeps the issuance record of leaf. A failure to record does not
// fail the issuance (the certificate is valid; only the inventory misses
// it): it is logged and counted.
func (c *CA) record(a *authority, leaf *x509.Certificate, p Params, now time.Time) {
	err := c.cfg.IssuanceLog.Record(IssuedCert{
		Serial: leaf.SerialNumber.Text(16), SPIFFEID: p.ID.String(),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, IssuedAt: now,
		Signer: a.signerSerial, Root: a.rootSerial, Method: p.Method, Node: p.Node,
	})
	if err != nil {
		c.metrics.recordErrors.Inc()
		c.log.Error("issuance record lost", "spiffe_id", p.ID.String(), "err", err)
	}
}

// Issued returns the unexpired issued certificates at now, one record per
// serial, ordered by expiry.
func (c *CA) Issued(now time.Time) []IssuedCert {
	return c.cfg.IssuanceLog.Issued(now)
}

// IssuedScope is the issuance log's scope (ScopeState or ScopeProcess).
func (c *CA) IssuedScope() string {
	if s, ok := c.cfg.IssuanceLog.(interface{ Scope() string }); ok {
		return s.Scope()
	}
	return ScopeProcess
}

// IssuedReport is what /debug/ca/issued serves.
func (c *CA) IssuedReport() IssuedReport {
	now := c.clock.Now()
	certs := c.Issued(now)
	return IssuedReport{GeneratedAt: now.UTC(), Scope: c.IssuedScope(), Count: len(certs), Certificates: certs}
}

// IssuedHandler serves IssuedReport as JSON, for /debug/ca/issued.
func (c *CA) IssuedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.IssuedReport())
	})
}

// Close releases the issuance log's file, if it has one.
func (c *CA) Close() error {
	if cl, ok := c.cfg.IssuanceLog.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
