package ca

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	pb "istio.io/api/security/v1alpha1"

	"github.com/wardmesh/ward/ca/caclient"
	"github.com/wardmesh/ward/mesh"
)

// Node-scoped issuance (Istio's ztunnel rule). A node proxy authenticates
// as its node identity and asks for a certificate for a workload by
// setting ImpersonatedIdentity in the request metadata; the CA issues it
// only when that workload is scheduled on the caller's node.
const (
	// ImpersonatedIdentity is Istio's request metadata key naming the
	// SPIFFE ID a node proxy asks a certificate for.
	ImpersonatedIdentity = caclient.ImpersonatedIdentity
	// NodeServiceAccount is the service account of node identities, in
	// the control plane's namespace (Istio: istio-system/ztunnel).
	NodeServiceAccount = "ward-node"
)

// The workload labels that place a WorkloadEntry on a node (file mode);
// the node package enrols by the same labels.
const (
	LabelDataplaneMode = "istio.io/dataplane-mode"
	DataplaneAmbient   = "ambient"
	LabelNode          = "ward.io/node"
)

// nodeName is a Kubernetes node name: a DNS-1123 subdomain.
var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidNodeName reports an error unless name is a DNS-1123 subdomain of
// at most 253 characters.
func ValidNodeName(name string) error {
	if len(name) == 0 || len(name) > 253 || !nodeName.MatchString(name) {
		return fmt.Errorf("node name %q is not a DNS-1123 subdomain", name)
	}
	return nil
}

// NodeID is the identity of the node proxy of node:
// spiffe://<td>/ns/<control-plane namespace>/sa/ward-node/node/<node>.
// It is not a workload identity (the path has six segments), so no
// workload authenticator yields it and no workload policy mistakes it
// for one; a prefix principal <td>/ns/ward-system/sa/ward-node/* names
// every node.
func NodeID(td spiffeid.TrustDomain, controlNS, node string) (spiffeid.ID, error) {
	if err := ValidNodeName(node); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(td, "ns", controlNS, "sa", NodeServiceAccount, "node", node)
}

// ParseNodeID returns the node a node identity of trust domain td and
// control-plane namespace controlNS is bound to.
func ParseNodeID(id spiffeid.ID, td spiffeid.TrustDomain, controlNS string) (string, bool) {
	if id.TrustDomain() != td {
		return "", false
	}
	prefix := "/ns/" + controlNS + "/sa/" + NodeServiceAccount + "/node/"
	node, ok := strings.CutPrefix(id.Path(), prefix)
	if !ok || ValidNodeName(node) != nil {
		return "", false
	}
	return node, true
}

// Placement answers where workloads run: whether a workload with the
// given identity is scheduled on node. File mode: a WorkloadEntry with
// that namespace and service account labelled ward.io/node=<node> and
// enrolled in ambient mode (SnapshotPlacement). Kubernetes mode: a live
// ambient pod with that namespace and service account whose spec.nodeName
// is node (kube.Placement).
type Placement interface {
	OnNode(ctx context.Context, node string, id mesh.Identity) (bool, error)
}

// SnapshotPlacement is the file-mode Placement over the current config.
type SnapshotPlacement struct {
	Snapshot func() *mesh.Snapshot
}

var _ Placement = SnapshotPlacement{}

// OnNode reports whether an ambient WorkloadEntry with identity id is
// labelled for node.
func (s SnapshotPlacement) OnNode(_ context.Context, node string, id mesh.Identity) (bool, error) {
	snap := s.Snapshot()
	if snap == nil {
		return false, errors.New("no config loaded")
	}
	for _, w := range snap.Workloads() {
		if w.Labels[LabelNode] != node || w.Labels[LabelDataplaneMode] != DataplaneAmbient || w.Name == "" {
			continue
		}
		wid := w.Identity(id.TrustDomain)
		if wid.Namespace == id.Namespace && wid.ServiceAccount == id.ServiceAccount {
			return true, nil
		}
	}
	return false, nil
}

// DeniedError is an authenticated caller asking for an identity it may
// not have; the service maps it to PermissionDenied.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return "denied: " + e.Reason }

func denied(format string, a ...any) error { return &DeniedError{Reason: fmt.Sprintf(format, a...)} }

// impersonated returns the identity a request's metadata asks for, or the
// zero ID when it asks for none.
func impersonated(req *pb.IstioCertificateRequest) (spiffeid.ID, error) {
	v, ok := req.GetMetadata().GetFields()[ImpersonatedIdentity]
	if !ok {
		return spiffeid.ID{}, nil
	}
	s := v.GetStringValue()
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, csrErr("%s %q: %v", ImpersonatedIdentity, s, err)
	}
	return id, nil
}

// subject decides the identity to issue: the caller's own, or, for a node
// proxy naming a workload, that workload's when it is on the caller's
// node. Only a node authenticated by its node certificate may
// impersonate; a join token only enrols the node itself.
func (c *CA) subject(ctx context.Context, caller *Caller, target spiffeid.ID) (spiffeid.ID, error) {
	if target.IsZero() {
		return caller.ID, nil
	}
	if caller.Node == "" {
		return spiffeid.ID{}, denied("%s asks to impersonate %s but is not a node proxy", caller.ID, target)
	}
	if caller.Method != MethodMTLS {
		return spiffeid.ID{}, denied("node %s must present its node certificate to impersonate (authenticated by %s)", caller.Node, caller.Method)
	}
	if _, err := c.caller(target, MethodMTLS, nil); err != nil {
		return spiffeid.ID{}, denied("node %s asks for %s: %v", caller.Node, target, err)
	}
	wid, _ := mesh.IdentityFromID(target) // checked by caller
	if c.cfg.Placement == nil {
		return spiffeid.ID{}, denied("node %s asks for %s: no workload placement source (node-scoped issuance is not available in this mode)", caller.Node, target)
	}
	ok, err := c.cfg.Placement.OnNode(ctx, caller.Node, wid)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("placement of %s on node %s: %w", target, caller.Node, err)
	}
	if !ok {
		return spiffeid.ID{}, denied("no workload with identity %s is scheduled on node %s", target, caller.Node)
	}
	return target, nil
}

// nodeCaller authenticates id as a node identity, or returns ok=false.
func (c *CA) nodeCaller(id spiffeid.ID, method string, commit func() error) (*Caller, bool) {
	node, ok := ParseNodeID(id, c.td, c.cfg.ServerIdentity.Namespace)
	if !ok {
		return nil, false
	}
	return &Caller{ID: id, Method: method, Node: node, commit: commit}, true
}

// isNode reports whether a verified peer's SPIFFE ID is a node identity.
func (c *CA) isNode(id string) bool {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return false
	}
	_, ok := ParseNodeID(sid, c.td, c.cfg.ServerIdentity.Namespace)
	return ok
}
