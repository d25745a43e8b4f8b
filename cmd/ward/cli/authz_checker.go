package cli

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/xds/simulate"
)

// engineChecker answers the simulated ext_authz filters with Ward's real
// ext_authz server in process (extauthz.SimChecker, the adapter the
// semantics suite judges every case with) and remembers each answer so
// the verdict can name the deciding rule.
type engineChecker struct {
	sim   extauthz.SimChecker
	calls []checkCall
}

var _ simulate.Checker = (*engineChecker)(nil)

func newChecker(srv *extauthz.Server) *engineChecker {
	c := &engineChecker{}
	c.sim = extauthz.SimChecker{Server: srv, Observe: func(filter string, resp *authv3.CheckResponse) {
		c.calls = append(c.calls, callOf(filter, resp))
	}}
	return c
}

func (c *engineChecker) Check(cr simulate.CheckRequest) (simulate.CheckResponse, error) {
	return c.sim.Check(cr)
}

// checkCall is one ext_authz answer: the filter asked, the decision and
// the rule and reason the server gave.
type checkCall struct {
	Filter  string `json:"filter"`
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule,omitempty"`
	Reason  string `json:"reason,omitempty"`
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
