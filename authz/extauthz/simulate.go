package extauthz

import (
	"context"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/xds/simulate"
)

// SimChecker answers the ext_authz filters of xds/simulate with a real
// Server, called in process with the CheckRequest Envoy would send: the
// semantics suite and `ward authz check --proxy-type` judge ext_authz
// mode with it, so a simulated verdict is the server's own.
type SimChecker struct {
	Server *Server
	// Observe, when set, sees each filter's check and the server's
	// response (the deciding rule is in its dynamic metadata).
	Observe func(filter string, resp *authv3.CheckResponse)
}

var _ simulate.Checker = SimChecker{}

// Check implements simulate.Checker.
func (c SimChecker) Check(cr simulate.CheckRequest) (simulate.CheckResponse, error) {
	check := authz.CheckFromRequest(SimulatedRequest(cr))
	check.Attributes.ContextExtensions = cr.ContextExtensions
	ctx := metadata.NewIncomingContext(context.Background(), metadata.New(cr.InitialMetadata))
	resp, err := c.Server.Check(ctx, check)
	if err != nil {
		return simulate.CheckResponse{}, err
	}
	if c.Observe != nil {
		c.Observe(cr.Filter, resp)
	}
	if resp.GetStatus().GetCode() == 0 {
		return simulate.CheckResponse{Allowed: true}, nil
	}
	return simulate.CheckResponse{Status: 403}, nil
}

// SimulatedRequest is what Envoy's ext_authz filter puts into the check
// of a simulated request: the connection's peers (the principal only
// with a client certificate), SNI, the HTTP request after the HCM's
// normalisation and the forwarded jwt_authn payload.
func SimulatedRequest(cr simulate.CheckRequest) *authz.Request {
	req := cr.Request
	r := &authz.Request{Source: authz.Peer{IP: req.SrcIP, Port: req.SrcPort}, Destination: authz.Peer{IP: req.DstIP, Port: req.DstPort}}
	if req.TLS {
		r.Source.Principal, r.SNI = req.PeerURISAN, req.SNI
	}
	if cr.Network {
		return r
	}
	headers := map[string]string{}
	for k, v := range cr.Headers {
		if !strings.HasPrefix(k, ":") {
			headers[k] = v
		}
	}
	r.HTTP = &authz.HTTPRequest{Method: cr.Headers[":method"], Path: cr.Path, Host: cr.Headers[":authority"], Headers: headers}
	if p, ok := cr.Metadata[authz.JWTFilter][authz.DefaultJWTPayloadKey].(map[string]any); ok {
		r.Auth = authz.AuthFromClaims(p)
	}
	return r
}
