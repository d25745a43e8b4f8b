package semantics

import (
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/xds/simulate"
)

// serverChecker answers the simulated ext_authz filters with Ward's real
// ext_authz server, called in-process with the CheckRequest Envoy would
// send (extauthz.SimChecker, which `ward authz check --proxy-type` uses
// too).
func serverChecker(srv *extauthz.Server) simulate.Checker { return extauthz.SimChecker{Server: srv} }
