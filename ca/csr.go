package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// CSRError is a rejected certificate signing request; the service maps it
// to InvalidArgument.
type CSRError struct{ Reason string }

func (e *CSRError) Error() string { return "invalid csr: " + e.Reason }

func csrErr(format string, a ...any) error { return &CSRError{Reason: fmt.Sprintf(format, a...)} }

// ParseCSR parses one PEM CERTIFICATE REQUEST of at most maxBytes, checks
// its signature and that its key is ECDSA P-256/P-384 or RSA >= 2048 bits.
// SANs in the CSR are returned as parsed; the caller decides identity.
func ParseCSR(b []byte, maxBytes int) (*x509.CertificateRequest, error) {
	if len(b) > maxBytes {
		return nil, csrErr("%d bytes exceeds the %d byte limit", len(b), maxBytes)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, csrErr("no PEM CERTIFICATE REQUEST block")
	}
	if len(pemTrim(rest)) != 0 {
		return nil, csrErr("trailing data after the CSR")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, csrErr("parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, csrErr("signature: %v", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return csrErr("ecdsa curve %s not allowed", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return csrErr("rsa key of %d bits, need at least 2048", k.N.BitLen())
		}
	default:
		return csrErr("key type %T not allowed", pub)
	}
	return nil
}

// IsCSRError reports whether err is a rejected CSR.
func IsCSRError(err error) bool {
	var e *CSRError
	return errors.As(err, &e)
}
