package hooks

import (
	"fmt"
	"net"
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
)

// ExtAuthzTarget is where Envoy proxies reach Ward's ext_authz server.
type ExtAuthzTarget struct {
	Address string // an IP address
	Port    uint32
	// TLS makes the proxies originate mTLS, as Ward's secure port (15012)
	// requires: the workload certificate from SDS "default", the mesh roots
	// from SDS "ROOTCA", ServerID as the only server identity accepted,
	// ALPN h2. False is plaintext, for `ward serve --authz-addr`, which
	// should only be reachable locally.
	TLS bool
	// ServerID is the SPIFFE ID the server must present. Zero means the
	// control plane's default identity in the mesh's trust domain,
	// spiffe://<td>/ns/ward-system/sa/ward (ca.CA.ServerID's default, and
	// what `ward agent` pins).
	ServerID spiffeid.ID
	// ServerNamespace is the control plane's namespace when ServerID is
	// zero ("": ward-system): a control plane installed elsewhere serves
	// spiffe://<td>/ns/<namespace>/sa/ward.
	ServerNamespace string
}

// ParseExtAuthzTarget reads "IP:port".
func ParseExtAuthzTarget(hostport string) (*ExtAuthzTarget, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("ext_authz target %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("ext_authz target %q: port must be 1-65535", hostport)
	}
	if net.ParseIP(h) == nil {
		return nil, fmt.Errorf("ext_authz target %q: host must be an IP address", hostport)
	}
	return &ExtAuthzTarget{Address: h, Port: uint32(port)}, nil
}

// ClusterName is the Envoy cluster of Ward's ext_authz server, named like
// Istio names the cluster of an ext_authz provider.
func (t *ExtAuthzTarget) ClusterName() string {
	return fmt.Sprintf("outbound|%d||ward-ext-authz", t.Port)
}

// ServerSAN is the URI SAN the server must present under mesh config m.
func (t *ExtAuthzTarget) ServerSAN(m mesh.MeshConfig) string {
	if !t.ServerID.IsZero() {
		return t.ServerID.String()
	}
	id := mesh.ControlPlaneIdentity(m.WithDefaults().TrustDomain)
	if t.ServerNamespace != "" {
		id.Namespace = t.ServerNamespace
	}
	return id.String()
}

// transportSocket is upstream auto-mTLS's context (authn.EnvoyClientTLS:
// SDS certificate and roots, the mesh's TLS profile, an exact URI SAN)
// offering h2 instead of Istio's mesh ALPNs: the server is Ward's gRPC
// server, which negotiates h2 only.
func (t *ExtAuthzTarget) transportSocket(m mesh.MeshConfig) *core.TransportSocket {
	tc := authn.EnvoyClientTLS(authn.ClientOptions{Profile: authn.Profile(m.TLSProfile), SANs: []string{t.ServerSAN(m)}})
	tc.CommonTlsContext.AlpnProtocols = []string{"h2"}
	return authn.TLSSocket(tc)
}

// Cluster is a static HTTP/2 cluster to the server (gRPC needs HTTP/2),
// over mTLS when t.TLS; m is the mesh config of the snapshot (trust
// domain and TLS profile).
func (t *ExtAuthzTarget) Cluster(m mesh.MeshConfig) *cluster.Cluster {
	opts, err := anypb.New(&httpopts.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		panic("hooks: pack HttpProtocolOptions: " + err.Error()) // a fixed, valid message
	}
	name := t.ClusterName()
	c := &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts,
		},
		LoadAssignment: &endpoint.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{
				HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: &core.Address{
					Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: t.Address, PortSpecifier: &core.SocketAddress_PortValue{PortValue: t.Port},
					}},
				}}},
			}}}},
		},
	}
	if t.TLS {
		c.TransportSocket = t.transportSocket(m)
	}
	return c
}

// fingerprint names what the target contributes to a proxy's config.
func (t *ExtAuthzTarget) fingerprint(m mesh.MeshConfig) string {
	fp := t.ClusterName() + "@" + t.Address
	if t.TLS {
		fp += "+mtls:" + t.ServerSAN(m)
	}
	return fp
}
