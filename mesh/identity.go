package mesh

import (
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh/identity"
)

// DefaultServiceAccount is the account a workload runs as when none is set.
const DefaultServiceAccount = identity.DefaultServiceAccount

// Identity is a workload's mesh identity: trust domain, namespace and
// service account, rendered as spiffe://<td>/ns/<ns>/sa/<sa>. It lives in
// package identity (which the agent imports without the mesh model).
type Identity = identity.Identity

// ParseIdentity parses a Ward workload SPIFFE ID. It accepts only the
// /ns/<ns>/sa/<sa> path shape.
func ParseIdentity(s string) (Identity, error) { return identity.Parse(s) }

// IdentityFromID converts a SPIFFE ID with the /ns/<ns>/sa/<sa> path.
func IdentityFromID(id spiffeid.ID) (Identity, error) { return identity.FromID(id) }
