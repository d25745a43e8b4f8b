package node

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// Conn is what the L4 policy sees of an inbound connection.
type Conn struct {
	// Principal is the caller's verified SPIFFE ID from HBONE; empty for a
	// plaintext caller.
	Principal string
	Source    netip.AddrPort
	Dest      netip.AddrPort // the destination workload's ip and target port
}

// Reasons a connection is refused before authorisation runs.
const (
	ReasonMTLSRequired    authz.Reason = "mtls_required"      // STRICT refuses plaintext
	ReasonNoLocalProvider authz.Reason = "custom_unsupported" // CUSTOM needs a waypoint
)

// Verdict is the explained decision on one connection.
type Verdict struct {
	Allowed bool
	Reason  authz.Reason
	// Mode is the destination port's effective PeerAuthentication mode and
	// PeerPolicy names the policy that set it ("" for the default).
	Mode       authn.Mode
	PeerPolicy string
	// Decision is the authz engine's (nil when PeerAuthentication refused
	// the connection first).
	Decision *authz.Decision
}

// Explain renders the verdict in one line for logs and errors.
func (v Verdict) Explain() string {
	if v.Decision == nil || v.Reason == ReasonNoLocalProvider {
		return fmt.Sprintf("%s: %s (peer authentication %s by %s)", verb(v.Allowed), v.Reason, v.Mode, orDefault(v.PeerPolicy))
	}
	return v.Decision.Explain()
}

func verb(ok bool) string {
	if ok {
		return "allowed"
	}
	return "denied"
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// Policy judges inbound connections with one snapshot's
// PeerAuthentications and AuthorizationPolicies. It is immutable; a new
// snapshot gets a new Policy.
type Policy struct {
	snap   *mesh.Snapshot
	engine *authz.Engine
}

// NewPolicy compiles the snapshot's AuthorizationPolicies.
func NewPolicy(snap *mesh.Snapshot, cfg authz.EngineConfig) (*Policy, error) {
	e, err := authz.NewEngine(snap, cfg)
	if err != nil {
		return nil, fmt.Errorf("node policy: %w", err)
	}
	return &Policy{snap: snap, engine: e}, nil
}

// Update returns the Policy for a new snapshot, reusing the compiled
// engine when the AuthorizationPolicies did not change.
func (p *Policy) Update(snap *mesh.Snapshot) (*Policy, error) {
	e, err := p.engine.Update(snap)
	if err != nil {
		return nil, fmt.Errorf("node policy: %w", err)
	}
	return &Policy{snap: snap, engine: e}, nil
}

// Workload is the destination of an inbound connection as policy sees it.
type Workload struct {
	Namespace string
	Labels    mesh.Labels
}

// Decide judges c to workload w: the port's effective PeerAuthentication
// first (STRICT refuses a plaintext caller), then the AuthorizationPolicies
// with Istio's TCP semantics (rules with HTTP-only fields: ALLOW dropped,
// DENY and AUDIT broadened), as the authz engine implements them. Any
// failure denies.
func (p *Policy) Decide(ctx context.Context, w Workload, c Conn) Verdict {
	peer := authn.PeerPolicyFor(p.snap, w.Namespace, w.Labels)
	v := Verdict{Mode: peer.ModeFor(uint32(c.Dest.Port())), PeerPolicy: peerPolicyName(peer)}
	if v.Mode == authn.ModeStrict && c.Principal == "" {
		v.Reason = ReasonMTLSRequired
		return v
	}
	prep, err := p.engine.For(ctx, w.Namespace, w.Labels)
	if err != nil {
		v.Decision = authz.FailClosed(authz.ReasonError, err)
		v.Reason = v.Decision.Reason
		return v
	}
	d, _ := prep.Decide(ctx, request(c)) // on error d denies (fail closed)
	v.Decision, v.Allowed, v.Reason = d, d.Allowed, d.Reason
	if v.Allowed && len(d.Delegated) > 0 {
		// An external CUSTOM provider is an HTTP ext_authz call; the node
		// proxy has none to make, so it refuses rather than skip the rule.
		v.Allowed, v.Reason = false, ReasonNoLocalProvider
	}
	return v
}

// request is the TCP form of c: no HTTP attributes, so the engine applies
// the TCP semantics.
func request(c Conn) *authz.Request {
	return &authz.Request{
		Source:      authz.Peer{IP: c.Source.Addr().String(), Port: uint32(c.Source.Port()), Principal: c.Principal},
		Destination: authz.Peer{IP: c.Dest.Addr().String(), Port: uint32(c.Dest.Port())},
	}
}

// peerPolicyName names the narrowest PeerAuthentication that applies.
func peerPolicyName(p authn.PeerPolicy) string {
	for _, c := range []*mesh.Config{p.Workload, p.Namespace, p.Mesh} {
		if c != nil {
			return c.Key().String()
		}
	}
	return ""
}
