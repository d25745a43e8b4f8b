// Package caclient is the client of Ward's certificate service
// (Istio's IstioCertificateService over TLS, the server verified as the
// control plane's SPIFFE ID): what an agent needs to enrol and renew,
// without the CA itself, so that the agent links no CA or Kubernetes
// code. Package ca re-exports it.
package caclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
)

// Authentication methods, as used in logs and metric labels.
const (
	MethodMTLS      = "mtls"
	MethodK8sJWT    = "k8s-jwt"
	MethodJoinToken = "join-token"
)

// Clock tells the time certificates are verified at.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config configures a connection to the certificate service.
type Config struct {
	Addr string
	// Bundle returns the roots the server certificate must chain to.
	Bundle func() *x509bundle.Bundle
	// ServerID is the SPIFFE ID the server certificate must carry.
	ServerID spiffeid.ID
	// Certificate, when set, is presented as the client certificate
	// (renewal by mTLS).
	Certificate *tls.Certificate
	// Token, when set, is sent as "authorization: Bearer <token>" (a
	// Kubernetes service-account token or a join token).
	Token string
	Clock Clock
}

// Client calls IstioCertificateService over TLS. One Client is one
// connection with one credential.
type Client struct {
	conn  *grpc.ClientConn
	api   pb.IstioCertificateServiceClient
	token string
}

// Dial connects to the certificate service; the server is verified as an
// X509-SVID for ServerID against Bundle.
func Dial(cfg Config) (*Client, error) {
	if cfg.Bundle == nil {
		return nil, errors.New("dial ca: no trust bundle")
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified as a SPIFFE ID below; there is no hostname to check
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, _, err := x509svid.ParseAndVerify(raw, cfg.Bundle(), x509svid.WithTime(cfg.Clock.Now()))
			if err != nil {
				return fmt.Errorf("ca server certificate: %w", err)
			}
			if id != cfg.ServerID {
				return fmt.Errorf("ca server is %s, want %s", id, cfg.ServerID)
			}
			return nil
		},
		Time: cfg.Clock.Now,
	}
	if cfg.Certificate != nil {
		cert := cfg.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("dial ca %s: %w", cfg.Addr, err)
	}
	return &Client{conn: conn, api: pb.NewIstioCertificateServiceClient(conn), token: cfg.Token}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// CreateCertificate sends a PEM CSR asking for ttl (0 = the CA default)
// and returns the response chain: leaf first, bundle last.
func (c *Client) CreateCertificate(ctx context.Context, csrPEM []byte, ttl time.Duration) ([]string, error) {
	return c.create(ctx, &pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: int64(ttl / time.Second)})
}

// ImpersonatedIdentity is Istio's request metadata key naming the
// identity a node proxy asks a certificate for.
const ImpersonatedIdentity = "ImpersonatedIdentity"

// CreateCertificateFor is CreateCertificate by a node proxy for workload
// id on its node (Istio's ImpersonatedIdentity request metadata). The
// caller must authenticate with its node certificate.
func (c *Client) CreateCertificateFor(ctx context.Context, id spiffeid.ID, csrPEM []byte, ttl time.Duration) ([]string, error) {
	md := &structpb.Struct{Fields: map[string]*structpb.Value{ImpersonatedIdentity: structpb.NewStringValue(id.String())}}
	return c.create(ctx, &pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: int64(ttl / time.Second), Metadata: md})
}

func (c *Client) create(ctx context.Context, req *pb.IstioCertificateRequest) ([]string, error) {
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	resp, err := c.api.CreateCertificate(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return resp.GetCertChain(), nil
}

// SplitChain parses a CreateCertificate response: the leaf with its
// intermediates, and the trust bundle's roots (the last element, which may
// hold several certificates).
func SplitChain(chain []string) (certs, roots []*x509.Certificate, err error) {
	if len(chain) < 2 {
		return nil, nil, fmt.Errorf("certificate chain has %d elements, want leaf and bundle", len(chain))
	}
	for i, s := range chain[:len(chain)-1] {
		cs, err := ParseCertificates([]byte(s))
		if err != nil {
			return nil, nil, fmt.Errorf("certificate chain element %d: %w", i, err)
		}
		certs = append(certs, cs...)
	}
	roots, err = ParseCertificates([]byte(chain[len(chain)-1]))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate chain bundle: %w", err)
	}
	return certs, roots, nil
}

// ParseCertificates parses every CERTIFICATE block in b.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("parse certificate: no CERTIFICATE block")
	}
	return out, nil
}
