package authn

import (
	"fmt"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// TransportSocketMatchKey is the endpoint metadata namespace Envoy reads
// for transport_socket_matches.
const TransportSocketMatchKey = "envoy.transport_socket_match"

// EndpointMTLS is the auto-mTLS decision for one endpoint: originate mTLS
// when mesh auto-mTLS is on, the workload has a Ward identity (label
// security.istio.io/tlsMode=istio) and its effective mode on the target
// port accepts mTLS (not DISABLE); otherwise plaintext.
func EndpointMTLS(snap *mesh.Snapshot, ep mesh.Endpoint) bool {
	w := ep.Workload
	if !snap.Mesh().AutoMTLS() || w == nil || w.TLSMode() != mesh.TLSModeIstio {
		return false
	}
	return PeerPolicyFor(snap, w.Namespace, w.Labels).ModeFor(ep.Port).AcceptsMTLS()
}

// EndpointMetadata is the EDS metadata that selects the mTLS transport
// socket match for an endpoint (nil for plaintext endpoints).
func EndpointMetadata(mtls bool) *core.Metadata {
	if !mtls {
		return nil
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{TransportSocketMatchKey: {Fields: map[string]*structpb.Value{
		"tlsMode": structpb.NewStringValue(string(mesh.TLSModeIstio)),
	}}}}
}

// Upstream is the client-side TLS of one outbound cluster. At most one of
// TransportSocket and TransportSocketMatches is set; neither means
// plaintext; UserTLS means a DestinationRule asks for SIMPLE or MUTUAL TLS,
// which the xDS core builds from the rule.
type Upstream struct {
	TransportSocket        *core.TransportSocket
	TransportSocketMatches []*cluster.Cluster_TransportSocketMatch
	UserTLS                bool
	Findings               []Finding
}

// OutboundTLS decides how proxy reaches svc on port (subset for SNI): a
// DestinationRule tls block (dr, nil if none) overrides; otherwise
// auto-mTLS per endpoint. Envoy gets one mTLS socket when every endpoint
// qualifies and transport_socket_matches (mTLS for endpoints labelled by
// EndpointMetadata, plaintext for the rest) when some do; proxyless gRPC,
// which has no socket matches, gets mTLS only when every endpoint
// qualifies, else plaintext and a finding.
func OutboundTLS(snap *mesh.Snapshot, proxy *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string, dr *networking.ClientTLSSettings) Upstream {
	if dr != nil {
		return drUpstream(snap, proxy, svc, port, subset, dr)
	}
	if !snap.Mesh().AutoMTLS() || svc.MeshExternal {
		return Upstream{}
	}
	var on, off int
	for _, ep := range snap.Endpoints(svc, port) {
		if EndpointMTLS(snap, ep) {
			on++
		} else {
			off++
		}
	}
	socket := func() *core.TransportSocket { return mtlsSocket(snap, proxy, svc, port, subset, nil, "") }
	switch {
	case on == 0:
		return Upstream{}
	case off == 0:
		return Upstream{TransportSocket: socket()}
	case proxy.Type == mesh.ProxyGRPC:
		return Upstream{Findings: []Finding{{Object: svc.Source, Severity: SeverityWarning, Reason: ReasonMixedIdentity,
			Message: fmt.Sprintf("service %s port %d mixes %d endpoints with a mesh identity and %d without; proxyless gRPC cannot choose TLS per endpoint, so it is reached in plaintext", svc.Hostname, port.Number, on, off)}}}
	}
	return Upstream{TransportSocketMatches: []*cluster.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: EndpointMetadata(true).GetFilterMetadata()[TransportSocketMatchKey], TransportSocket: socket()},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: RawBufferSocket()},
	}}
}

func drUpstream(snap *mesh.Snapshot, proxy *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string, dr *networking.ClientTLSSettings) Upstream {
	switch dr.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
		return Upstream{}
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		return Upstream{TransportSocket: mtlsSocket(snap, proxy, svc, port, subset, dr.GetSubjectAltNames(), dr.GetSni())}
	}
	return Upstream{UserTLS: true}
}

func mtlsSocket(snap *mesh.Snapshot, proxy *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string, sans []string, sni string) *core.TransportSocket {
	if len(sans) == 0 {
		sans = ServiceSANs(snap, svc)
	}
	if proxy.Type == mesh.ProxyGRPC {
		return TLSSocket(GRPCClientTLS(sans))
	}
	if sni == "" {
		sni = SNI(port.Number, subset, svc.Hostname)
	}
	return TLSSocket(EnvoyClientTLS(ClientOptions{Profile: Profile(snap.Mesh().TLSProfile), SANs: sans, SNI: sni, HTTP: port.Protocol.IsHTTP()}))
}

// ServiceSANs are the identities a service's workloads may present: the
// ServiceEntry's subjectAltNames, else the SPIFFE IDs of its members'
// service accounts, sorted and unique.
func ServiceSANs(snap *mesh.Snapshot, svc *mesh.Service) []string {
	if len(svc.SubjectAltNames) > 0 {
		return svc.SubjectAltNames
	}
	td := snap.Mesh().TrustDomain
	set := map[string]bool{}
	for _, w := range snap.Members(svc) {
		set[w.Identity(td).String()] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// UpstreamTLSHook adapts OutboundTLS to the xDS core's narrow
// UpstreamTLS hook (no DestinationRule tls; one socket per cluster). It
// returns the single socket; for an Envoy cluster mixing identities it
// returns nil (plaintext) — wire OutboundTLS directly to get
// transport_socket_matches for that case.
func UpstreamTLSHook(snap *mesh.Snapshot, proxy *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string) *core.TransportSocket {
	return OutboundTLS(snap, proxy, svc, port, subset, nil).TransportSocket
}
