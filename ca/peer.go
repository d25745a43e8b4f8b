package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/wardmesh/ward/mesh"
)

// ErrNoPeerCertificate is returned by PeerIdentity for a caller that
// presented no verified client certificate.
var ErrNoPeerCertificate = errors.New("no verified client certificate")

// PeerIdentity authenticates the gRPC peer of ctx by its client
// certificate alone (no token): a chain verified by the handshake
// (ServerTLSConfig), ending at a root trusted now, valid now, naming a
// workload of this CA's trust domain. The secure port's xDS server binds
// each stream to it.
func (c *CA) PeerIdentity(ctx context.Context) (mesh.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return mesh.Identity{}, ErrNoPeerCertificate
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return mesh.Identity{}, ErrNoPeerCertificate
	}
	return c.ChainIdentity(ti.State.VerifiedChains)
}

// ChainIdentity is PeerIdentity for chains verified by any TLS server
// using ServerTLSConfig (an HTTPS debug listener).
func (c *CA) ChainIdentity(chains [][]*x509.Certificate) (mesh.Identity, error) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return mesh.Identity{}, ErrNoPeerCertificate
	}
	cur := c.current()
	for _, chain := range chains {
		leaf, root := chain[0], chain[len(chain)-1]
		if !cur.hasRoot(root) {
			continue
		}
		if now := c.clock.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return mesh.Identity{}, errors.New("client certificate is not valid now")
		}
		id, err := x509svid.IDFromCert(leaf)
		if err != nil {
			return mesh.Identity{}, fmt.Errorf("client certificate: %w", err)
		}
		if _, err := c.caller(id, MethodMTLS, nil); err != nil {
			return mesh.Identity{}, err
		}
		return mesh.IdentityFromID(id)
	}
	return mesh.Identity{}, errors.New("client certificate root is no longer trusted")
}
