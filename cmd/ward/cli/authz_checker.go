package cli

import (
	"context"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/metadata"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/xds/simulate"
)

// engineChecker answers the simulated ext_authz filters with Ward's real
// ext_authz server, called in process with the CheckRequest Envoy would
// send (the same adapter test/semantics judges every case with), and
// remembers each answer so the verdict can name the deciding rule.
type engineChecker struct {
	srv   *extauthz.Server
	calls []checkCall
}

var _ simulate.Checker = (*engineChecker)(nil)

// checkCall is one ext_authz answer: the filter asked, the decision and
// the rule and reason the server gave.
type checkCall struct {
	Filter  string `json:"filter"`
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (c *engineChecker) Check(cr simulate.CheckRequest) (simulate.CheckResponse, error) {
	check := authz.CheckFromRequest(checkRequestOf(cr))
	check.Attributes.ContextExtensions = cr.ContextExtensions
	ctx := metadata.NewIncomingContext(context.Background(), metadata.New(cr.InitialMetadata))
	resp, err := c.srv.Check(ctx, check)
	if err != nil {
		return simulate.CheckResponse{}, err
	}
	call := callOf(cr.Filter, resp)
	c.calls = append(c.calls, call)
	if call.Allowed {
		return simulate.CheckResponse{Allowed: true}, nil
	}
	return simulate.CheckResponse{Status: 403}, nil
}

// callOf reads Ward's decision keys from a CheckResponse.
func callOf(filter string, resp *authv3.CheckResponse) checkCall {
	call := checkCall{Filter: filter, Allowed: resp.GetStatus().GetCode() == 0}
	f := resp.GetDynamicMetadata().GetFields()
	call.Rule = f["ward_rule"].GetStringValue()
	call.Reason = f["ward_reason"].GetStringValue()
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "x-ward-authz-reason") {
			call.Reason = h.GetHeader().GetValue()
		}
	}
	return call
}

// checkRequestOf is what Envoy's ext_authz filter puts into the check:
// the connection's peers (the principal only with a client certificate),
// SNI, the HTTP request after the HCM's normalisation and the forwarded
// jwt_authn payload.
func checkRequestOf(cr simulate.CheckRequest) *authz.Request {
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

// summary is the call on one line: the verdict, the rule and the reason
// when it adds to the rule.
func (c checkCall) summary() string {
	s := verdictWord(c.Allowed)
	if c.Rule != "" {
		s += " " + c.Rule
	}
	if c.Reason != "" && (c.Rule == "" || !strings.Contains(c.Reason, c.Rule)) {
		s += " (" + c.Reason + ")"
	}
	return s
}
