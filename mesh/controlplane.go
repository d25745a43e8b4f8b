package mesh

import "github.com/wardmesh/ward/mesh/identity"

// The control plane's default identity (see package identity).
const (
	ControlPlaneNamespace      = identity.ControlPlaneNamespace
	ControlPlaneServiceAccount = identity.ControlPlaneServiceAccount
)

// ControlPlaneIdentity is the control plane's default identity in trust
// domain td.
func ControlPlaneIdentity(td string) Identity { return identity.ControlPlane(td) }
