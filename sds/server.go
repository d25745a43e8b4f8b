package sds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Secret names.
const (
	SecretDefault = "default" // certificate chain + private key
	SecretRootCA  = "ROOTCA"  // trust bundle
	SecretAll     = "ALL"     // SPIRE's name: every trust domain, as a SPIFFE validator
)

// Config configures a Server.
type Config struct {
	TrustDomain string
	Log         *slog.Logger
	// OnPush, if set, is called after a response is sent on a stream, with
	// the names it carried (test and benchmark hook).
	OnPush func(names []string)
}

// Server serves a workload's secrets over SDS, state of the world
// (StreamSecrets) and delta (DeltaSecrets). Every secret carries the
// version of the update that last changed it; an update wakes every
// stream, which sends what changed among the names it subscribed to.
//
// It implements the protocol itself rather than through go-control-plane's
// server and cache, which link every xDS resource type (clusters,
// listeners, routes...) into the agent: the agent needs only secrets.
type Server struct {
	secretservice.UnimplementedSecretDiscoveryServiceServer
	cfg Config
	td  spiffeid.TrustDomain
	log *slog.Logger

	mu      sync.Mutex
	version uint64             // of the last update
	secrets map[string]*secret // by name
	changed chan struct{}      // closed (and replaced) by every update
}

// secret is one published secret, packed once for every stream.
type secret struct {
	any     *anypb.Any
	version string // the update that last changed it
}

var _ secretservice.SecretDiscoveryServiceServer = (*Server)(nil)

// NewServer returns a server with no secrets yet; streams asking for them
// wait until SetIdentity and SetBundle are called.
func NewServer(cfg Config) (*Server, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("sds: trust domain %q: %w", cfg.TrustDomain, err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, td: td, log: cfg.Log.With("component", "sds"), secrets: map[string]*secret{}, changed: make(chan struct{})}, nil
}

// Register adds the secret discovery service (SotW and delta) to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	secretservice.RegisterSecretDiscoveryServiceServer(g, s)
}

// SetIdentity publishes the workload's certificate chain (leaf first) and
// private key, PEM encoded, as "default".
func (s *Server) SetIdentity(chainPEM, keyPEM []byte) error {
	if len(chainPEM) == 0 || len(keyPEM) == 0 {
		return errors.New("sds: empty certificate chain or key")
	}
	sec := &tlsv3.Secret{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(chainPEM),
		PrivateKey:       inline(keyPEM),
	}}}
	if err := sec.ValidateAll(); err != nil {
		return fmt.Errorf("sds: secret %s: %w", SecretDefault, err)
	}
	return s.update(map[string]*tlsv3.Secret{SecretDefault: sec})
}

// SetBundle publishes the trust bundle (concatenated PEM roots) as
// "ROOTCA", "spiffe://<td>" and "ALL". Removing a root is just a smaller
// bundle; it is pushed like any change.
func (s *Server) SetBundle(rootsPEM []byte) error {
	if len(rootsPEM) == 0 {
		return errors.New("sds: empty trust bundle")
	}
	vc := &tlsv3.CertificateValidationContext{TrustedCa: inline(rootsPEM)}
	spiffe, err := anypb.New(&tlsv3.SPIFFECertValidatorConfig{TrustDomains: []*tlsv3.SPIFFECertValidatorConfig_TrustDomain{
		{Name: s.td.Name(), TrustBundle: inline(rootsPEM)},
	}})
	if err != nil {
		return fmt.Errorf("sds: spiffe validator: %w", err)
	}
	all := &tlsv3.CertificateValidationContext{CustomValidatorConfig: &core.TypedExtensionConfig{
		Name: "envoy.tls.cert_validator.spiffe", TypedConfig: spiffe,
	}}
	res := map[string]*tlsv3.Secret{
		SecretRootCA:    validationSecret(SecretRootCA, vc),
		s.td.IDString(): validationSecret(s.td.IDString(), vc),
		SecretAll:       validationSecret(SecretAll, all),
	}
	for n, r := range res {
		if err := r.ValidateAll(); err != nil {
			return fmt.Errorf("sds: secret %s: %w", n, err)
		}
	}
	return s.update(res)
}

// update publishes res as one new version: secrets whose bytes changed
// take it, and every stream is woken.
func (s *Server) update(res map[string]*tlsv3.Secret) error {
	packed := make(map[string]*anypb.Any, len(res))
	for n, r := range res {
		a, err := anypb.New(r)
		if err != nil {
			return fmt.Errorf("sds: update %s: %w", n, err)
		}
		packed[n] = a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	v := fmt.Sprintf("sds-%d", s.version)
	for n, a := range packed {
		if old := s.secrets[n]; old == nil || !proto.Equal(old.any, a) {
			s.secrets[n] = &secret{any: a, version: v}
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func validationSecret(name string, vc *tlsv3.CertificateValidationContext) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc}}
}

func inline(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

// Serve serves SDS on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer()
	s.Register(g)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sds: serve: %w", err)
	case <-ctx.Done():
		g.Stop()
		return nil
	}
}

// ListenUnix creates the Unix socket at path (removing a stale one), in a
// 0750 directory, with mode 0660 so only the proxy's group can connect.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sds: socket dir: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sds: remove stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("sds: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("sds: chmod %s: %w", path, err)
	}
	return lis, nil
}
