package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/ca/caclient"
)

// requestTimeout bounds one CreateCertificate call.
const requestTimeout = 30 * time.Second

// credential is one way of authenticating to the CA.
type credential struct {
	method string
	cert   *tls.Certificate
	token  string
}

// Renew gets a new certificate for a freshly generated key and installs
// it. The key never leaves the agent.
func (a *Agent) Renew(ctx context.Context) error {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("renew: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return fmt.Errorf("renew: csr: %w", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	chain, method, err := a.request(ctx, csr)
	if err != nil {
		a.metrics.renewals.WithLabelValues("failure").Inc()
		return err
	}
	s, err := a.accept(chain, key)
	if err != nil {
		a.metrics.renewals.WithLabelValues("rejected").Inc()
		return err
	}
	if err := a.install(s); err != nil {
		a.metrics.renewals.WithLabelValues("failure").Inc()
		return err
	}
	a.metrics.renewals.WithLabelValues("success").Inc()
	a.log.Info("certificate installed", "spiffe_id", s.ID.String(), "method", method,
		"not_after", s.Certs[0].NotAfter, "renew_at", s.RenewAt, "roots", len(s.Roots))
	return nil
}

// credentials lists what to try, best first: the current certificate
// while valid, then an unused join token, then the service-account token.
func (a *Agent) credentials() []credential {
	var out []credential
	if s := a.Current(); s != nil && a.clock.Now().Before(s.Certs[0].NotAfter) {
		c := &tls.Certificate{PrivateKey: s.Key, Leaf: s.Certs[0]}
		for _, x := range s.Certs {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		out = append(out, credential{method: caclient.MethodMTLS, cert: c})
	}
	if a.cfg.JoinToken != "" && !a.joinUsed.Load() {
		out = append(out, credential{method: caclient.MethodJoinToken, token: a.cfg.JoinToken})
	}
	if a.cfg.TokenFile != "" {
		out = append(out, credential{method: caclient.MethodK8sJWT})
	}
	return out
}

// request tries each credential in turn; it moves to the next only when the
// CA answered Unauthenticated.
func (a *Agent) request(ctx context.Context, csr []byte) ([]string, string, error) {
	creds := a.credentials()
	if len(creds) == 0 {
		return nil, "", errors.New("renew: no credential (no valid certificate, join token or token file)")
	}
	var errs []error
	for _, c := range creds {
		chain, err := a.call(ctx, c, csr)
		if err == nil {
			if c.method == caclient.MethodJoinToken {
				a.joinUsed.Store(true)
			}
			return chain, c.method, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.method, err))
		if status.Code(err) != codes.Unauthenticated {
			break
		}
	}
	return nil, "", fmt.Errorf("renew: %w", errors.Join(errs...))
}

func (a *Agent) call(ctx context.Context, c credential, csr []byte) ([]string, error) {
	if c.method == caclient.MethodK8sJWT {
		tok, err := a.readToken()
		if err != nil {
			return nil, err
		}
		c.token = tok
	}
	cl, err := caclient.Dial(caclient.Config{
		Addr: a.cfg.CAAddr, Bundle: a.caBundle, ServerID: a.cfg.CAServerID,
		Certificate: c.cert, Token: c.token, Clock: a.clock,
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return cl.CreateCertificate(ctx, csr, a.cfg.TTL)
}

// accept verifies the response is an X509-SVID in our trust domain, for our
// key, chaining to the bundle that came with it.
func (a *Agent) accept(chain []string, key crypto.Signer) (*SVID, error) {
	certs, roots, err := caclient.SplitChain(chain)
	if err != nil {
		return nil, fmt.Errorf("accept certificate: %w", err)
	}
	id, _, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(a.td, roots), x509svid.WithTime(a.clock.Now()))
	if err != nil {
		return nil, fmt.Errorf("accept certificate: %w", err)
	}
	if id.TrustDomain() != a.td {
		return nil, fmt.Errorf("accept certificate: %s is outside trust domain %s", id, a.td)
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("accept certificate: public key is not ours")
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("accept certificate: %w", err)
	}
	s := &SVID{ID: id, Certs: certs, Key: key, Roots: roots,
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})}
	for _, c := range certs {
		s.ChainPEM = append(s.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for _, r := range roots {
		s.BundlePEM = append(s.BundlePEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	s.RenewAt = a.renewAt(certs[0])
	return s, nil
}

// install publishes s: memory, SDS, files, metrics, then Changed waiters.
func (a *Agent) install(s *SVID) error {
	if prev := a.Current(); prev != nil && prev.ID != s.ID {
		a.log.Warn("identity changed", "from", prev.ID.String(), "to", s.ID.String())
	}
	a.svid.Store(s)
	var errs []error
	if a.cfg.SDS != nil {
		errs = append(errs, a.cfg.SDS.SetBundle(s.BundlePEM), a.cfg.SDS.SetIdentity(s.ChainPEM, s.KeyPEM))
	}
	if a.cfg.OutputDir != "" {
		errs = append(errs, a.writeFiles(s))
	}
	a.metrics.observe(s)
	a.changeMu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.changeMu.Unlock()
	return errors.Join(errs...)
}
