package ca

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wardmesh/ward/mesh"
)

// ReservedError is a refusal to issue (or mint a token for) an identity
// reserved for the control plane.
type ReservedError struct {
	Namespace, ServiceAccount string
	// Server is true for the control plane's own identity, which is never
	// issued to a caller.
	Server bool
}

func (e *ReservedError) Error() string {
	if e.Server {
		return fmt.Sprintf("identity %s/%s is the control plane's own and is never issued to a caller", e.Namespace, e.ServiceAccount)
	}
	id := e.Namespace + "/" + e.ServiceAccount
	return fmt.Sprintf("identity %s is in the control plane's reserved namespace %s; allow it explicitly (ward serve --ca-allow-reserved %s, and ward ca token create --allow-reserved %s)",
		id, e.Namespace, id, id)
}

// IsReserved reports whether err is a ReservedError.
func IsReserved(err error) bool {
	var e *ReservedError
	return errors.As(err, &e)
}

// Reservation says which identities the CA keeps for the control plane,
// as SPIRE reserves its server's path: the control plane's own identity is
// never issued to a caller, and every other identity in its namespace only
// when explicitly allowed. The control plane's serving certificate is
// signed in-process (MethodControlPlane) and is the only exception.
type Reservation struct {
	server  mesh.Identity
	allowed map[string]bool // "namespace/serviceaccount"
}

// NewReservation reserves server's identity and namespace; allowed lists
// "namespace/serviceaccount" identities in that namespace that may still
// be issued (the server's own identity cannot be allowed).
func NewReservation(server mesh.Identity, allowed []string) (*Reservation, error) {
	r := &Reservation{server: server, allowed: map[string]bool{}}
	for _, a := range allowed {
		ns, sa, ok := strings.Cut(a, "/")
		if !ok || ns == "" || sa == "" || strings.Contains(sa, "/") {
			return nil, fmt.Errorf("allowed reserved identity %q: want namespace/serviceaccount", a)
		}
		if ns == server.Namespace && sa == server.ServiceAccount {
			return nil, fmt.Errorf("allowed reserved identity %q: the control plane's own identity cannot be allowed", a)
		}
		r.allowed[a] = true
	}
	return r, nil
}

// DefaultReservation reserves the default control-plane identity
// (ward-system/ward) and its namespace.
func DefaultReservation() *Reservation {
	r, _ := NewReservation(mesh.ControlPlaneIdentity(""), nil)
	return r
}

// Check returns a *ReservedError when namespace/account may not be issued
// to a caller.
func (r *Reservation) Check(namespace, account string) error {
	if namespace != r.server.Namespace {
		return nil
	}
	if account == r.server.ServiceAccount {
		return &ReservedError{Namespace: namespace, ServiceAccount: account, Server: true}
	}
	if r.allowed[namespace+"/"+account] {
		return nil
	}
	return &ReservedError{Namespace: namespace, ServiceAccount: account}
}
