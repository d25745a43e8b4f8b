// Package identity owns Ward's workload identities: the SPIFFE ID shape
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, its
// parsing, and the control plane's default identity. It imports no config
// API, so the agent can use it without linking the mesh model; package
// mesh re-exports it.
package identity

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

// Parse parses a Ward workload SPIFFE ID. It accepts only the
// /ns/<ns>/sa/<sa> path shape.
func Parse(s string) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("parse identity %q: %w", s, err)
	}
	return FromID(id)
}

// FromID converts a SPIFFE ID with the /ns/<ns>/sa/<sa> path.
func FromID(id spiffeid.ID) (Identity, error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return Identity{}, fmt.Errorf("parse identity %q: path must be /ns/<namespace>/sa/<service-account>", id.String())
	}
	return Identity{TrustDomain: id.TrustDomain().Name(), Namespace: parts[1], ServiceAccount: parts[3]}, nil
}

// The control plane's default identity: the service account its serving
// certificate names (spiffe://<td>/ns/ward-system/sa/ward). Agents pin it
// when they reach the CA and xDS, Envoy and proxyless workloads when they
// reach ext_authz.
const (
	ControlPlaneNamespace      = "ward-system"
	ControlPlaneServiceAccount = "ward"
)

// ControlPlane is the control plane's default identity in trust domain td.
func ControlPlane(td string) Identity {
	return Identity{TrustDomain: td, Namespace: ControlPlaneNamespace, ServiceAccount: ControlPlaneServiceAccount}
}
