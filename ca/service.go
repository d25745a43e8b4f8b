package ca

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// CSR results, the values of the result label.
const (
	resultIssued          = "issued"
	resultInvalid         = "invalid"
	resultUnauthenticated = "unauthenticated"
	resultError           = "error"
)

// service implements istio.v1.auth.IstioCertificateService.
type service struct {
	pb.UnimplementedIstioCertificateServiceServer
	ca *CA
}

var _ pb.IstioCertificateServiceServer = (*service)(nil)

// Register adds the IstioCertificateService to s. s should use the
// credentials from ServerTLSConfig so renewals can authenticate by their
// client certificate.
func (c *CA) Register(s grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(s, &service{ca: c})
}

// CreateCertificate signs a CSR for the authenticated caller's identity.
// Errors are opaque to the caller; the log has the full reason.
func (s *service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	start := time.Now()
	resp, result, err := s.create(ctx, req)
	s.ca.metrics.csrs.WithLabelValues(result).Inc()
	if result == resultIssued {
		s.ca.metrics.latency.Observe(time.Since(start).Seconds())
	}
	return resp, err
}

func (s *service) create(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, string, error) {
	c := s.ca
	log := c.log.With("csr_sha256", csrHash(req.GetCsr()))
	csr, err := ParseCSR([]byte(req.GetCsr()), c.cfg.MaxCSRBytes)
	if err != nil {
		log.Warn("csr rejected", "reason", err)
		return nil, resultInvalid, status.Error(codes.InvalidArgument, "invalid certificate signing request")
	}
	caller, err := c.authenticate(ctx)
	if err != nil {
		log.Warn("csr caller not authenticated", "reason", err)
		return nil, resultUnauthenticated, status.Error(codes.Unauthenticated, "authentication failed")
	}
	log = log.With("spiffe_id", caller.ID.String(), "method", caller.Method)
	for _, u := range csr.URIs {
		if u.String() != caller.ID.String() {
			log.Warn("csr rejected", "reason", "csr asks for another identity", "requested", u.String())
			return nil, resultInvalid, status.Error(codes.InvalidArgument, "invalid certificate signing request")
		}
	}
	issued, err := c.Sign(Params{ID: caller.ID, PublicKey: csr.PublicKey, TTL: time.Duration(req.GetValidityDuration()) * time.Second, Method: caller.Method})
	if err != nil {
		log.Error("signing failed", "err", err)
		return nil, resultError, status.Error(codes.Internal, "signing failed")
	}
	if caller.commit != nil {
		if err := caller.commit(); err != nil {
			log.Warn("csr caller not authenticated", "reason", err)
			return nil, resultUnauthenticated, status.Error(codes.Unauthenticated, "authentication failed")
		}
	}
	log.Debug("certificate issued", "serial", issued.Leaf.SerialNumber.Text(16), "not_after", issued.Leaf.NotAfter)
	return &pb.IstioCertificateResponse{CertChain: issued.Chain}, resultIssued, nil
}

// csrHash is how CSRs appear in logs: a short SHA-256, never the content.
func csrHash(csr string) string {
	sum := sha256.Sum256([]byte(csr))
	return hex.EncodeToString(sum[:8])
}
