package mesh

import (
	"sort"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// Kind names an Istio config kind, e.g. "PeerAuthentication".
type Kind string

// The Istio kinds Ward understands.
const (
	KindPeerAuthentication    Kind = "PeerAuthentication"
	KindRequestAuthentication Kind = "RequestAuthentication"
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
	KindVirtualService        Kind = "VirtualService"
	KindDestinationRule       Kind = "DestinationRule"
	KindGateway               Kind = "Gateway"
	KindServiceEntry          Kind = "ServiceEntry"
	KindSidecar               Kind = "Sidecar"
	KindWorkloadEntry         Kind = "WorkloadEntry"
	KindWorkloadGroup         Kind = "WorkloadGroup"
	KindTelemetry             Kind = "Telemetry"
)

// API groups of the Istio kinds.
const (
	GroupSecurity   = "security.istio.io"
	GroupNetworking = "networking.istio.io"
	GroupTelemetry  = "telemetry.istio.io"
)

// KindInfo describes how a kind is spelled on the wire and which protobuf
// type holds its spec.
type KindInfo struct {
	Kind     Kind
	Group    string
	Versions []string // accepted API versions, newest first
	Plural   string   // lower-case plural resource name
	newSpec  func() proto.Message
}

// NewSpec returns an empty spec message for the kind.
func (k KindInfo) NewSpec() proto.Message { return k.newSpec() }

var kinds = map[Kind]KindInfo{
	KindPeerAuthentication:    secKind(KindPeerAuthentication, "peerauthentications", func() proto.Message { return &security.PeerAuthentication{} }),
	KindRequestAuthentication: secKind(KindRequestAuthentication, "requestauthentications", func() proto.Message { return &security.RequestAuthentication{} }),
	KindAuthorizationPolicy:   secKind(KindAuthorizationPolicy, "authorizationpolicies", func() proto.Message { return &security.AuthorizationPolicy{} }),
	KindVirtualService:        netKind(KindVirtualService, "virtualservices", func() proto.Message { return &networking.VirtualService{} }),
	KindDestinationRule:       netKind(KindDestinationRule, "destinationrules", func() proto.Message { return &networking.DestinationRule{} }),
	KindGateway:               netKind(KindGateway, "gateways", func() proto.Message { return &networking.Gateway{} }),
	KindServiceEntry:          netKind(KindServiceEntry, "serviceentries", func() proto.Message { return &networking.ServiceEntry{} }),
	KindSidecar:               netKind(KindSidecar, "sidecars", func() proto.Message { return &networking.Sidecar{} }),
	KindWorkloadEntry:         netKind(KindWorkloadEntry, "workloadentries", func() proto.Message { return &networking.WorkloadEntry{} }),
	KindWorkloadGroup:         netKind(KindWorkloadGroup, "workloadgroups", func() proto.Message { return &networking.WorkloadGroup{} }),
	// telemetry.istio.io/v1 is an alias of the v1alpha1 messages.
	KindTelemetry: {Kind: KindTelemetry, Group: GroupTelemetry, Versions: []string{"v1", "v1alpha1"}, Plural: "telemetries",
		newSpec: func() proto.Message { return &telemetry.Telemetry{} }},
}

func secKind(k Kind, plural string, f func() proto.Message) KindInfo {
	return KindInfo{Kind: k, Group: GroupSecurity, Versions: []string{"v1", "v1beta1"}, Plural: plural, newSpec: f}
}

func netKind(k Kind, plural string, f func() proto.Message) KindInfo {
	return KindInfo{Kind: k, Group: GroupNetworking, Versions: []string{"v1", "v1beta1", "v1alpha3"}, Plural: plural, newSpec: f}
}

// LookupKind returns the kind registered for group/version and kind name.
func LookupKind(group, version string, kind string) (KindInfo, bool) {
	info, ok := kinds[Kind(kind)]
	if !ok || info.Group != group {
		return KindInfo{}, false
	}
	for _, v := range info.Versions {
		if v == version {
			return info, true
		}
	}
	return KindInfo{}, false
}

// Info returns the registration of k; ok is false for an unknown kind.
func (k Kind) Info() (KindInfo, bool) {
	info, ok := kinds[k]
	return info, ok
}

// Kinds lists every registered kind in a stable order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
