package ca

import (
	"crypto/x509"
	"testing"
)

func FuzzParseCSR(f *testing.F) {
	f.Add(makeCSR(f, ecKey(f)))
	f.Add(makeCSR(f, ecKey(f), "spiffe://example.org/ns/a/sa/b"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b, DefaultMaxCSRBytes)
		if err != nil {
			if !IsCSRError(err) {
				t.Fatalf("error %v is not a CSRError", err)
			}
			return
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR with a bad signature")
		}
		if checkKey(csr.PublicKey) != nil {
			t.Fatal("accepted a disallowed key")
		}
		if _, ok := csr.PublicKey.(interface {
			Equal(x509.PublicKeyAlgorithm) bool
		}); ok {
			t.Fatal("unreachable")
		}
	})
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("wardjt.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("wardjt..")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			return
		}
		if tok.String() != s {
			t.Fatalf("round trip %q -> %q", s, tok.String())
		}
		if len(tok.ID) != tokenIDLen || len(tok.Secret) != tokenSecretLen {
			t.Fatalf("accepted bad lengths in %q", s)
		}
	})
}
