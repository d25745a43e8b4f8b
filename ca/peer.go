package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
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
	id, err := c.chainID(chains)
	if err != nil {
		return mesh.Identity{}, err
	}
	if _, err := c.caller(id, MethodMTLS, nil); err != nil {
		return mesh.Identity{}, err
	}
	return mesh.IdentityFromID(id)
}

// PeerNode authenticates the gRPC peer of ctx as a node proxy by its
// node certificate alone, with PeerIdentity's chain checks, and returns
// the node named in it (ParseNodeID). A workload certificate is not a
// node certificate: it is refused, as a node certificate is refused by
// PeerIdentity. The secure port's xDS server binds node streams to it.
func (c *CA) PeerNode(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ErrNoPeerCertificate
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", ErrNoPeerCertificate
	}
	id, err := c.chainID(ti.State.VerifiedChains)
	if err != nil {
		return "", err
	}
	node, ok := ParseNodeID(id, c.td, c.cfg.ServerIdentity.Namespace)
	if !ok {
		return "", fmt.Errorf("client certificate %s is not a node identity", id)
	}
	return node, nil
}

// chainID returns the SPIFFE ID of the leaf of the first verified chain
// ending at a root trusted now, valid now.
func (c *CA) chainID(chains [][]*x509.Certificate) (spiffeid.ID, error) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return spiffeid.ID{}, ErrNoPeerCertificate
	}
	cur := c.current()
	for _, chain := range chains {
		leaf, root := chain[0], chain[len(chain)-1]
		if !cur.hasRoot(root) {
			continue
		}
		if now := c.clock.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return spiffeid.ID{}, errors.New("client certificate is not valid now")
		}
		id, err := x509svid.IDFromCert(leaf)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("client certificate: %w", err)
		}
		return id, nil
	}
	return spiffeid.ID{}, errors.New("client certificate root is no longer trusted")
}
