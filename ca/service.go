package ca

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// CSR results, the values of the result label.
const (
	resultIssued          = "issued"
	resultInvalid         = "invalid"
	resultUnauthenticated = "unauthenticated"
	resultRateLimited     = "rate_limited"
	resultDenied          = "denied"
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
	pre := precheck(ctx)
	release, err := c.admit(pre)
	if err != nil {
		return nil, resultRateLimited, err
	}
	defer release()
	log := c.log.With("csr_sha256", csrHash(req.GetCsr()))
	csr, err := ParseCSR([]byte(req.GetCsr()), c.cfg.MaxCSRBytes)
	if err != nil {
		c.warnLimited("csr_invalid", log, "csr rejected", "reason", err)
		return nil, resultInvalid, status.Error(codes.InvalidArgument, "invalid certificate signing request")
	}
	caller, err := c.authenticate(ctx)
	if err != nil {
		c.limits.failed(pre.sources()...)
		c.warnLimited("auth_failed", log, "csr caller not authenticated", "reason", err, "source", pre.addr)
		return nil, resultUnauthenticated, status.Error(codes.Unauthenticated, "authentication failed")
	}
	log = log.With("spiffe_id", caller.ID.String(), "method", caller.Method)
	target, err := impersonated(req)
	if err != nil {
		c.warnLimited("csr_invalid", log, "csr rejected", "reason", err)
		return nil, resultInvalid, status.Error(codes.InvalidArgument, "invalid certificate signing request")
	}
	id, err := c.subject(ctx, caller, target)
	if err != nil {
		result, err := c.refuse(log, err)
		return nil, result, err
	}
	if id != caller.ID {
		log = log.With("node", caller.Node, "impersonated", id.String())
	}
	if id.String() != pre.mtlsID && !c.limits.allowIdentity(id.String()) {
		return nil, resultRateLimited, c.limited(limitIdentity, pre)
	}
	for _, u := range csr.URIs {
		if u.String() != id.String() {
			c.warnLimited("csr_invalid", log, "csr rejected", "reason", "csr asks for another identity", "requested", u.String())
			return nil, resultInvalid, status.Error(codes.InvalidArgument, "invalid certificate signing request")
		}
	}
	method, node := caller.Method, ""
	if id != caller.ID {
		method, node = MethodNodeProxy, caller.Node
	}
	issued, err := c.Sign(Params{ID: id, PublicKey: csr.PublicKey, TTL: time.Duration(req.GetValidityDuration()) * time.Second, Method: method, Node: node})
	if err != nil {
		log.Error("signing failed", "err", err)
		return nil, resultError, status.Error(codes.Internal, "signing failed")
	}
	if caller.commit != nil {
		if err := caller.commit(); err != nil {
			c.warnLimited("auth_failed", log, "csr caller not authenticated", "reason", err, "source", pre.addr)
			return nil, resultUnauthenticated, status.Error(codes.Unauthenticated, "authentication failed")
		}
	}
	log.Debug("certificate issued", "serial", issued.Leaf.SerialNumber.Text(16), "not_after", issued.Leaf.NotAfter)
	return &pb.IstioCertificateResponse{CertChain: issued.Chain}, resultIssued, nil
}

// refuse logs why an authenticated caller was refused and returns the
// opaque status: PermissionDenied for a DeniedError, Internal otherwise.
func (c *CA) refuse(log *slog.Logger, err error) (string, error) {
	var d *DeniedError
	if errors.As(err, &d) {
		c.warnLimited("denied", log, "csr refused", "reason", err)
		return resultDenied, status.Error(codes.PermissionDenied, "not authorised for the requested identity")
	}
	log.Error("csr refused", "err", err)
	return resultError, status.Error(codes.Internal, "certificate request failed")
}

// pre is what the service knows of a caller before any expensive work:
// the SPIFFE ID of a client certificate the TLS handshake verified, the
// source address and the id of a join token. Limits are keyed by them.
type pre struct {
	mtlsID  string
	addr    string
	tokenID string
}

func precheck(ctx context.Context) pre {
	var p pre
	if pr, ok := peer.FromContext(ctx); ok {
		if pr.Addr != nil {
			p.addr = pr.Addr.String()
			if h, _, err := net.SplitHostPort(p.addr); err == nil {
				p.addr = h
			}
		}
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			if id, err := x509svid.IDFromCert(ti.State.VerifiedChains[0][0]); err == nil {
				p.mtlsID = id.String()
			}
		}
	}
	if t, err := ParseJoinToken(bearer(ctx)); err == nil {
		p.tokenID = t.ID
	}
	return p
}

// sources are the keys failed authentications are charged to.
func (p pre) sources() []string {
	out := []string{"addr:" + p.addr}
	if p.tokenID != "" {
		out = append(out, "token:"+p.tokenID)
	}
	return out
}

// admit applies the limits that come before parsing and authentication:
// the global rate (callers without a mesh certificate draw on their share
// only), concurrency, a source's failure budget, and for renewals over
// mTLS the identity's budget. It returns the release of the concurrency
// slot or a RESOURCE_EXHAUSTED status.
func (c *CA) admit(p pre) (func(), error) {
	mtls := p.mtlsID != ""
	release, hit := c.limits.admit(mtls)
	if hit != "" {
		return nil, c.limited(hit, p)
	}
	switch {
	case !mtls && c.limits.failing(p.sources()...):
		hit = limitSource
	case mtls && c.isNode(p.mtlsID) && !c.limits.allowNode(p.mtlsID):
		hit = limitNode
	case mtls && !c.isNode(p.mtlsID) && !c.limits.allowIdentity(p.mtlsID):
		hit = limitIdentity
	}
	if hit != "" {
		release()
		return nil, c.limited(hit, p)
	}
	return release, nil
}

// limited counts and (rate-limited) logs a refusal by limit hit.
func (c *CA) limited(hit string, p pre) error {
	c.metrics.rateLimited.WithLabelValues(hit).Inc()
	c.warnLimited("rate_limited_"+hit, c.log, "csr refused: rate limit", "limit", hit, "source", p.addr, "spiffe_id", p.mtlsID)
	return status.Error(codes.ResourceExhausted, "certificate signing rate limit exceeded; retry with backoff")
}

// warnLimited logs a warning about a refused request unless one of the
// same kind was logged within Limits.LogEvery; the next line that is
// logged carries the count of the suppressed ones.
func (c *CA) warnLimited(kind string, log *slog.Logger, msg string, args ...any) {
	ok, n := c.logLimit.allow(kind)
	if !ok {
		c.metrics.suppressed.Inc()
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}

// csrHash is how CSRs appear in logs: a short SHA-256, never the content.
func csrHash(csr string) string {
	sum := sha256.Sum256([]byte(csr))
	return hex.EncodeToString(sum[:8])
}
