package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/wardmesh/ward/mesh"
)

// backdate is how far before "now" leaves become valid, for clock skew.
const backdate = time.Minute

// Params describes a certificate to issue. ID is the only URI SAN; DNS
// names and IPs are only set for the control plane's serving certificate.
type Params struct {
	ID        spiffeid.ID
	PublicKey crypto.PublicKey
	TTL       time.Duration // 0 = default; clamped to MaxTTL
	DNSNames  []string
	IPs       []net.IP
	// Method is how the caller authenticated, kept in the issuance record.
	Method string
	// Node is the node proxy that asked for this workload certificate
	// (impersonation), kept in the issuance record; "" otherwise.
	Node string
}

// Issued is a freshly signed certificate.
type Issued struct {
	Leaf *x509.Certificate
	// Chain is the Istio response order: leaf, intermediates, and last the
	// trust bundle (every current root, concatenated PEM).
	Chain []string
}

// ClampTTL returns the TTL a request for ttl gets: the default for zero or
// negative, at most MaxTTL.
func (c *CA) ClampTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return c.cfg.DefaultTTL
	}
	return min(ttl, c.cfg.MaxTTL)
}

// Sign issues a certificate for p in three steps: build the template,
// sign it, validate what was signed. When another replica rotated the
// signing root meanwhile (shared state), it signs again with the new one.
func (c *CA) Sign(p Params) (*Issued, error) {
	if p.ID.TrustDomain() != c.td {
		return nil, fmt.Errorf("sign %s: trust domain is not %s", p.ID, c.td)
	}
	if err := c.checkReserved(p); err != nil {
		return nil, fmt.Errorf("sign %s: %w", p.ID, err)
	}
	iss, err := c.sign(p)
	if errors.Is(err, errSignerChanged) {
		iss, err = c.sign(p)
	}
	return iss, err
}

// checkReserved refuses a reserved identity unless the certificate is the
// control plane's own (MethodControlPlane: signed in-process, never on
// behalf of a caller).
func (c *CA) checkReserved(p Params) error {
	if p.Method == MethodControlPlane {
		return nil
	}
	id, err := mesh.IdentityFromID(p.ID)
	if err != nil {
		return nil // not a workload path: no namespace to reserve
	}
	return c.reserved.Check(id.Namespace, id.ServiceAccount)
}

func (c *CA) sign(p Params) (*Issued, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a := c.current()
	now := c.clock.Now()
	tmpl, err := c.template(a, p, now)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.Unix() > a.reserved.Load() {
		if err := c.reserve(a, now, tmpl.NotAfter); err != nil {
			return nil, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.signer, p.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", p.ID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign %s: parse result: %w", p.ID, err)
	}
	if err := validateLeaf(a, leaf, p, now); err != nil {
		return nil, fmt.Errorf("sign %s: self-check failed: %w", p.ID, err)
	}
	c.record(a, leaf, p, now)
	chain := make([]string, 0, len(a.chainPEM)+2)
	chain = append(chain, string(encodeCertPEM(leaf)))
	chain = append(chain, a.chainPEM...)
	chain = append(chain, string(a.bundlePEM))
	return &Issued{Leaf: leaf, Chain: chain}, nil
}

// template builds the leaf template: SPIFFE ID as the only URI SAN,
// server+client EKU, TTL clamped and capped at the signing chain's expiry.
func (c *CA) template(a *authority, p Params, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("template %s: serial: %w", p.ID, err)
	}
	notAfter := now.Add(c.ClampTTL(p.TTL))
	if notAfter.After(a.notAfter) {
		notAfter = a.notAfter
	}
	notBefore := now.Add(-backdate)
	if notBefore.Before(a.signer.NotBefore) {
		notBefore = a.signer.NotBefore
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("template %s: signing chain expired at %s", p.ID, a.notAfter)
	}
	u := url.URL(*p.ID.URL())
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{&u},
		DNSNames:              p.DNSNames,
		IPAddresses:           p.IPs,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        a.signer.SubjectKeyId,
	}, nil
}

// validateLeaf checks the signed leaf is exactly what was asked for and a
// valid X509-SVID under the signer: one URI SAN equal to the ID, not a CA,
// no CA key usages, issued by the signer (name and key id), within the
// chain's lifetime, for the requested key. The signature itself is not
// re-verified here: x509.CreateCertificate already checks it against the
// signer's public key before returning, and a second ECDSA verification
// would double the cost of every issuance.
func validateLeaf(a *authority, leaf *x509.Certificate, p Params, now time.Time) error {
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != p.ID.String() {
		return fmt.Errorf("URI SANs %v, want exactly %s", leaf.URIs, p.ID)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil || id != p.ID {
		return fmt.Errorf("not an X509-SVID for %s: %v", p.ID, err)
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("leaf has CA powers or lacks digitalSignature")
	}
	if !bytes.Equal(leaf.RawIssuer, a.signer.RawSubject) {
		return errors.New("issuer is not the signer")
	}
	if len(a.signer.SubjectKeyId) > 0 && !bytes.Equal(leaf.AuthorityKeyId, a.signer.SubjectKeyId) {
		return errors.New("authority key id does not match the signer")
	}
	if leaf.NotAfter.After(a.notAfter) || leaf.NotBefore.Before(a.signer.NotBefore) {
		return fmt.Errorf("leaf validity %s..%s is outside its chain's (..%s)", leaf.NotBefore, leaf.NotAfter, a.notAfter)
	}
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return errors.New("leaf is not valid now")
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(p.PublicKey) {
		return errors.New("leaf public key differs from the requested key")
	}
	return nil
}
