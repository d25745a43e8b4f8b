package mesh

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultServiceAccount is the account a workload runs as when none is set.
const DefaultServiceAccount = "default"

// Identity is a workload's mesh identity: trust domain, namespace and
// service account, rendered as spiffe://<td>/ns/<ns>/sa/<sa>.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// SPIFFEID returns the identity as a validated SPIFFE ID.
func (i Identity) SPIFFEID() (spiffeid.ID, error) {
	td, err := spiffeid.TrustDomainFromString(i.TrustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: trust domain %q: %w", i.TrustDomain, err)
	}
	id, err := spiffeid.FromSegments(td, "ns", i.Namespace, "sa", i.ServiceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: ns %q sa %q: %w", i.Namespace, i.ServiceAccount, err)
	}
	return id, nil
}

// String renders the SPIFFE URI without validating it.
func (i Identity) String() string {
	return "spiffe://" + i.TrustDomain + "/ns/" + i.Namespace + "/sa/" + i.ServiceAccount
}

// Principal is the identity in Istio's principal form (no scheme):
// <td>/ns/<ns>/sa/<sa>, as matched by AuthorizationPolicy principals.
func (i Identity) Principal() string {
	return i.TrustDomain + "/ns/" + i.Namespace + "/sa/" + i.ServiceAccount
}

// ParseIdentity parses a Ward workload SPIFFE ID. It accepts only the
// /ns/<ns>/sa/<sa> path shape.
func ParseIdentity(s string) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, err)
	}
	return IdentityFromID(id)
}

// IdentityFromID converts a SPIFFE ID with the /ns/<ns>/sa/<sa> path.
func IdentityFromID(id spiffeid.ID) (Identity, error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return Identity{}, fmt.Errorf("parse identity %q: path must be /ns/<namespace>/sa/<service-account>", id.String())
	}
	return Identity{TrustDomain: id.TrustDomain().Name(), Namespace: parts[1], ServiceAccount: parts[3]}, nil
}
