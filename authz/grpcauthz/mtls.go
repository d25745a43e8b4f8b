package grpcauthz

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Files `ward agent --output-dir` writes (agent.FileCertChain, FileKey,
// FileRoots; a test holds them equal). They are repeated here so an
// application linking this package does not link the agent.
const (
	FileCertChain = "cert-chain.pem"
	FileKey       = "key.pem"
	FileRoots     = "root-cert.pem"
)

// MTLSFromDir returns the transport credentials for the channel to Ward's
// ext_authz server over mTLS (ward serve's secure port, 15012), for
// Config.DialOptions. The workload presents its certificate from dir
// (cert-chain.pem, key.pem: the agent's output directory) and verifies
// the server as an X509-SVID for serverID (the control plane,
// spiffe://<td>/ns/ward-system/sa/ward unless `ward agent --ca-server-id`
// says otherwise) chaining to root-cert.pem. The files are read again on
// every handshake, so the agent's rotations (certificate and roots) reach
// new connections; if a read finds a pair that does not parse (the agent
// replaces the key and the chain one after the other), the last good one
// is used. The files must be readable now.
func MTLSFromDir(dir string, serverID spiffeid.ID) (grpc.DialOption, error) {
	tc, err := tlsConfigFromDir(dir, serverID)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tc)), nil
}

func tlsConfigFromDir(dir string, serverID spiffeid.ID) (*tls.Config, error) {
	if serverID.IsZero() {
		return nil, errors.New("grpcauthz: mtls: a server SPIFFE ID is required")
	}
	src := &dirSource{dir: dir, td: serverID.TrustDomain()}
	if _, err := src.GetX509SVID(); err != nil {
		return nil, err
	}
	if _, err := src.GetX509BundleForTrustDomain(src.td); err != nil {
		return nil, err
	}
	// MTLSClientConfig verifies the server's chain and SPIFFE ID itself
	// (there is no host name to check) and asks src on every handshake.
	return tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(serverID)), nil
}

// dirSource serves the agent's files as go-spiffe X509-SVID and bundle
// sources, re-reading them on each call and re-parsing only on change.
type dirSource struct {
	dir string
	td  spiffeid.TrustDomain

	mu       sync.Mutex
	svidPEM  []byte // chain then key, as last parsed
	svid     *x509svid.SVID
	rootsPEM []byte
	bundle   *x509bundle.Bundle
}

var (
	_ x509svid.Source   = (*dirSource)(nil)
	_ x509bundle.Source = (*dirSource)(nil)
)

// GetX509SVID returns the workload's certificate and key.
func (d *dirSource) GetX509SVID() (*x509svid.SVID, error) {
	chain, errC := os.ReadFile(filepath.Join(d.dir, FileCertChain))
	key, errK := os.ReadFile(filepath.Join(d.dir, FileKey))
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := errors.Join(errC, errK); err != nil {
		return d.lastSVID(fmt.Errorf("grpcauthz: mtls: read workload certificate: %w", err))
	}
	both := append(append([]byte{}, chain...), key...)
	if d.svid != nil && bytes.Equal(both, d.svidPEM) {
		return d.svid, nil
	}
	s, err := x509svid.Parse(chain, key)
	if err != nil {
		return d.lastSVID(fmt.Errorf("grpcauthz: mtls: workload certificate in %s: %w", d.dir, err))
	}
	d.svid, d.svidPEM = s, both
	return s, nil
}

func (d *dirSource) lastSVID(err error) (*x509svid.SVID, error) {
	if d.svid != nil {
		return d.svid, nil
	}
	return nil, err
}

// GetX509BundleForTrustDomain returns the roots of root-cert.pem for the
// server's trust domain.
func (d *dirSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != d.td {
		return nil, fmt.Errorf("grpcauthz: mtls: no roots for trust domain %q (the server's is %q)", td.Name(), d.td.Name())
	}
	pem, err := os.ReadFile(filepath.Join(d.dir, FileRoots))
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		return d.lastBundle(fmt.Errorf("grpcauthz: mtls: read roots: %w", err))
	}
	if d.bundle != nil && bytes.Equal(pem, d.rootsPEM) {
		return d.bundle, nil
	}
	b, err := x509bundle.Parse(td, pem)
	if err == nil && b.Empty() {
		err = errors.New("no certificates")
	}
	if err != nil {
		return d.lastBundle(fmt.Errorf("grpcauthz: mtls: roots in %s: %w", d.dir, err))
	}
	d.bundle, d.rootsPEM = b, pem
	return b, nil
}

func (d *dirSource) lastBundle(err error) (*x509bundle.Bundle, error) {
	if d.bundle != nil {
		return d.bundle, nil
	}
	return nil, err
}
