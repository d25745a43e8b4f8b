package ca

import (
	"crypto/x509"

	"github.com/wardmesh/ward/ca/caclient"
)

// ClientConfig configures a connection to the certificate service (see
// package caclient, which agents import without the CA).
type ClientConfig = caclient.Config

// Client calls IstioCertificateService over TLS. One Client is one
// connection with one credential.
type Client = caclient.Client

// Dial connects to the certificate service; the server is verified as an
// X509-SVID for ServerID against Bundle.
func Dial(cfg ClientConfig) (*Client, error) { return caclient.Dial(cfg) }

// SplitChain parses a CreateCertificate response: the leaf with its
// intermediates, and the trust bundle's roots (the last element).
func SplitChain(chain []string) (certs, roots []*x509.Certificate, err error) {
	return caclient.SplitChain(chain)
}
