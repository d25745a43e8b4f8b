package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// authority is an immutable view of who signs and what is trusted. A new
// one is published on every change; readers load it atomically.
type authority struct {
	signer        *x509.Certificate
	key           crypto.Signer
	intermediates []*x509.Certificate // signer's chain up to (excluding) the root; plug-in mode
	chainPEM      []string            // signer + intermediates as PEM, for responses; empty when the root signs
	roots         []*x509.Certificate
	bundle        *x509bundle.Bundle
	bundlePEM     []byte
	pool          *x509.CertPool
	notAfter      time.Time // earliest expiry along the signing chain
	signingRoot   *x509.Certificate
	signerSerial  string // hex serials, for issuance records
	rootSerial    string
	selfSigned    bool // the signer is a root (self-signed mode)
	// reserved is the unix second up to which leaves may expire without
	// persisting a new reservation (self-signed mode).
	reserved atomic.Int64
}

func newAuthority(td spiffeid.TrustDomain, now time.Time, signer *x509.Certificate, key crypto.Signer, chain, roots []*x509.Certificate) (*authority, error) {
	if !signer.IsCA || signer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("signing certificate %q is not a CA with certSign usage", signer.Subject)
	}
	if !keyMatches(signer, key) {
		return nil, fmt.Errorf("signing key does not match certificate %q", signer.Subject)
	}
	a := &authority{signer: signer, key: key, intermediates: chain, roots: roots}
	a.bundle = x509bundle.FromX509Authorities(td, roots)
	a.pool = x509.NewCertPool()
	for _, r := range roots {
		a.pool.AddCert(r)
		a.bundlePEM = append(a.bundlePEM, encodeCertPEM(r)...)
	}
	if err := a.verifyChain(now); err != nil {
		return nil, err
	}
	a.selfSigned = isSelfSigned(signer)
	if !a.selfSigned {
		a.chainPEM = append(a.chainPEM, string(encodeCertPEM(signer)))
		for _, c := range chain {
			a.chainPEM = append(a.chainPEM, string(encodeCertPEM(c)))
		}
	}
	a.reserved.Store(math.MaxInt64)
	return a, nil
}

// verifyChain checks the signer chains to one of the roots and records the
// chain's earliest expiry, which caps every leaf.
func (a *authority) verifyChain(now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range a.intermediates {
		inter.AddCert(c)
	}
	chains, err := a.signer.Verify(x509.VerifyOptions{
		Roots: a.pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("signing certificate %q does not chain to the bundle: %w", a.signer.Subject, err)
	}
	a.notAfter = a.signer.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(a.notAfter) {
			a.notAfter = c.NotAfter
		}
	}
	a.signingRoot = chains[0][len(chains[0])-1]
	a.signerSerial = a.signer.SerialNumber.Text(16)
	a.rootSerial = a.signingRoot.SerialNumber.Text(16)
	return nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// hasRoot reports whether c is one of the bundle's roots.
func (a *authority) hasRoot(c *x509.Certificate) bool {
	for _, r := range a.roots {
		if bytes.Equal(r.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// authorityFromState builds the self-signed mode authority.
func authorityFromState(td spiffeid.TrustDomain, now time.Time, s *State) (*authority, error) {
	var roots []*x509.Certificate
	var signer *x509.Certificate
	var key crypto.Signer
	var reserved time.Time
	for i, r := range s.Roots {
		certs, err := parseCertsPEM([]byte(r.CertPEM))
		if err != nil {
			return nil, fmt.Errorf("ca state root %d: %w", i, err)
		}
		roots = append(roots, certs[0])
		if !r.Signing {
			continue
		}
		if signer != nil {
			return nil, errors.New("ca state: more than one signing root")
		}
		signer = certs[0]
		if key, err = parseKeyPEM([]byte(r.KeyPEM)); err != nil {
			return nil, fmt.Errorf("ca state root %d: %w", i, err)
		}
		reserved = r.IssuedUntil
	}
	if signer == nil {
		return nil, errors.New("ca state: no signing root")
	}
	a, err := newAuthority(td, now, signer, key, nil, roots)
	if err != nil {
		return nil, err
	}
	a.reserved.Store(reserved.Unix())
	return a, nil
}
