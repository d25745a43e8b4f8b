package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// serverCert caches the control plane's serving certificate.
type serverCert struct {
	mu     sync.Mutex
	cert   *tls.Certificate
	signer *x509.Certificate
}

// ServerID is the control plane's SPIFFE ID, the identity of the 15012
// serving certificate that agents pin.
func (c *CA) ServerID() spiffeid.ID {
	id, _ := c.cfg.ServerIdentity.SPIFFEID() // validated in New
	return id
}

// ServerTLSConfig returns the TLS config for the 15012 listener: a serving
// certificate for ServerID issued by this CA (renewed at half its life and
// whenever the signer changes) and optional client certificates verified
// against the current bundle, which the mTLS authenticator then uses.
func (c *CA) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, err := c.serverCertificate()
			if err != nil {
				c.log.Error("serving certificate", "err", err)
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{"h2"},
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    c.current().pool,
				Time:         c.clock.Now,
			}, nil
		},
	}
}

func (c *CA) serverCertificate() (*tls.Certificate, error) {
	s := &c.server
	s.mu.Lock()
	defer s.mu.Unlock()
	a := c.current()
	if s.cert != nil && s.signer == a.signer {
		l := s.cert.Leaf
		if c.clock.Now().Before(l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) / 2)) {
			return s.cert, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving certificate key: %w", err)
	}
	p := Params{ID: c.ServerID(), PublicKey: key.Public(), TTL: c.cfg.DefaultTTL, Method: MethodControlPlane}
	for _, n := range c.cfg.ServerNames {
		if ip := net.ParseIP(n); ip != nil {
			p.IPs = append(p.IPs, ip)
		} else {
			p.DNSNames = append(p.DNSNames, n)
		}
	}
	issued, err := c.Sign(p)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{issued.Leaf.Raw}, PrivateKey: key, Leaf: issued.Leaf}
	if !a.selfSigned {
		cert.Certificate = append(cert.Certificate, a.signer.Raw)
		for _, i := range a.intermediates {
			cert.Certificate = append(cert.Certificate, i.Raw)
		}
	}
	s.cert, s.signer = cert, a.signer
	return cert, nil
}
