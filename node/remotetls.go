package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ClientTLS returns the TLS config of the node's other connections to
// `ward serve` (its ADS stream): the current node certificate at every
// handshake, so a renewal applies to the next connection, and the server
// verified as the control plane's SPIFFE ID against the current bundle.
func (r *RemoteCA) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified as a SPIFFE ID below; there is no hostname to check
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, _, err := x509svid.ParseAndVerify(raw, r.bundle, x509svid.WithTime(r.cfg.Clock.Now()))
			if err != nil {
				return fmt.Errorf("control plane certificate: %w", err)
			}
			if id != r.cfg.ServerID {
				return fmt.Errorf("control plane is %s, want %s", id, r.cfg.ServerID)
			}
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.current(), nil },
		Time:                 r.cfg.Clock.Now,
	}
}
