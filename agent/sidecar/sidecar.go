// Package sidecar renders the bootstrap of a sidecar Envoy served by
// Ward: ADS to the control plane over mTLS with the workload certificate
// and roots from the agent's SDS socket. It is apart from package agent
// so that the agent binary links no Envoy bootstrap or cluster protos.
package sidecar

import (
	"fmt"
	"net"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/mesh/identity"
)

// Config describes a sidecar Envoy's bootstrap.
type Config struct {
	Identity   identity.Identity // the workload's identity (namespace, service account)
	Name       string
	IP         string
	Labels     map[string]string
	XDSAddress string // host:port of Ward's xDS server (mTLS)
	// ControlPlaneID is the SAN the xDS server's certificate must carry.
	ControlPlaneID spiffeid.ID
	SDSSocket      string // the agent's SDS Unix socket
	AdminPort      uint32 // default 15000
}

// Cluster names in the Envoy bootstrap.
const (
	ClusterXDS = "xds-grpc"
	ClusterSDS = "sds-grpc"
)

// Bootstrap builds the bootstrap: ADS to ClusterXDS over mTLS whose
// certificate and roots come over SDS from ClusterSDS, the agent's socket.
// The result passes ValidateAll.
func Bootstrap(c Config) (*bootstrapv3.Bootstrap, error) {
	host, portStr, err := net.SplitHostPort(c.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: xds address %q: %w", c.XDSAddress, err)
	}
	var port uint32
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: xds port %q: %w", portStr, err)
	}
	if c.AdminPort == 0 {
		c.AdminPort = 15000
	}
	xds, err := xdsCluster(c, host, port)
	if err != nil {
		return nil, err
	}
	sds, err := sdsCluster(c.SDSSocket)
	if err != nil {
		return nil, err
	}
	labels := map[string]any{}
	for k, v := range c.Labels {
		labels[k] = v
	}
	meta, err := structpb.NewStruct(map[string]any{
		"NAMESPACE": c.Identity.Namespace, "SERVICE_ACCOUNT": c.Identity.ServiceAccount,
		"INSTANCE_IPS": c.IP, "LABELS": labels,
	})
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: metadata: %w", err)
	}
	ads := &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3, ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	b := &bootstrapv3.Bootstrap{
		Node:            &core.Node{Id: agent.NodeID("sidecar", c.IP, c.Name, c.Identity.Namespace), Cluster: c.Name + "." + c.Identity.Namespace, Metadata: meta},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xds, sds}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: grpcSource(ClusterXDS),
			CdsConfig: ads,
			LdsConfig: proto.Clone(ads).(*core.ConfigSource),
		},
		Admin: &bootstrapv3.Admin{Address: socketAddr("127.0.0.1", c.AdminPort)},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return b, nil
}

func grpcSource(cluster string) *core.ApiConfigSource {
	return &core.ApiConfigSource{
		ApiType: core.ApiConfigSource_GRPC, TransportApiVersion: core.ApiVersion_V3, SetNodeOnFirstMessageOnly: true,
		GrpcServices: []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: cluster}}}},
	}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_ApiConfigSource{ApiConfigSource: grpcSource(ClusterSDS)},
	}}
}

func http2Options() (map[string]*anypb.Any, error) {
	a, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		},
	}})
	if err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": a}, nil
}

func xdsCluster(c Config, host string, port uint32) (*clusterv3.Cluster, error) {
	opts, err := http2Options()
	if err != nil {
		return nil, err
	}
	tlsCtx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: c.ControlPlaneID.String()}},
			}}},
			ValidationContextSdsSecretConfig: sdsSecret("ROOTCA"),
		}},
	}}
	ts, err := anypb.New(tlsCtx)
	if err != nil {
		return nil, err
	}
	typ := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		typ = clusterv3.Cluster_STATIC
	}
	return &clusterv3.Cluster{
		Name: ClusterXDS, ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: typ},
		TypedExtensionProtocolOptions: opts,
		LoadAssignment:                loadAssignment(ClusterXDS, socketAddr(host, port)),
		TransportSocket:               &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: ts}},
	}, nil
}

func sdsCluster(socket string) (*clusterv3.Cluster, error) {
	opts, err := http2Options()
	if err != nil {
		return nil, err
	}
	pipe := &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: socket}}}
	return &clusterv3.Cluster{
		Name: ClusterSDS, ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		TypedExtensionProtocolOptions: opts,
		LoadAssignment:                loadAssignment(ClusterSDS, pipe),
	}, nil
}

func socketAddr(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func loadAssignment(name string, addr *core.Address) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}}}},
	}}}
}
