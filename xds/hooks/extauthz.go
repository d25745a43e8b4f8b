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
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ExtAuthzTarget is where Envoy proxies reach Ward's ext_authz server.
type ExtAuthzTarget struct {
	Address string // an IP address
	Port    uint32
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

// Cluster is a static HTTP/2 cluster to the server (gRPC needs HTTP/2).
func (t *ExtAuthzTarget) Cluster() *cluster.Cluster {
	opts, err := anypb.New(&httpopts.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		panic("hooks: pack HttpProtocolOptions: " + err.Error()) // a fixed, valid message
	}
	name := t.ClusterName()
	return &cluster.Cluster{
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
}
