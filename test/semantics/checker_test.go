package semantics

import (
	"context"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/xds/simulate"
)

// serverChecker answers the simulated ext_authz filters with Ward's real
// ext_authz server, called in-process with the CheckRequest Envoy would
// send.
type serverChecker struct{ srv *extauthz.Server }

var _ simulate.Checker = serverChecker{}

func (c serverChecker) Check(cr simulate.CheckRequest) (simulate.CheckResponse, error) {
	check := authz.CheckFromRequest(requestOf(cr))
	check.Attributes.ContextExtensions = cr.ContextExtensions
	ctx := metadata.NewIncomingContext(context.Background(), metadata.New(cr.InitialMetadata))
	resp, err := c.srv.Check(ctx, check)
	if err != nil {
		return simulate.CheckResponse{}, err
	}
	if resp.GetStatus().GetCode() == 0 {
		return simulate.CheckResponse{Allowed: true}, nil
	}
	return simulate.CheckResponse{Status: 403}, nil
}

// requestOf is what Envoy's ext_authz filter puts into the check: the
// connection's peers (the principal only with a client certificate), SNI,
// the HTTP request after the HCM's normalisation and the forwarded
// jwt_authn payload.
func requestOf(cr simulate.CheckRequest) *authz.Request {
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
