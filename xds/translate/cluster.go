package translate

import (
	"fmt"
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

// Well-known cluster names, as Istio spells them.
const (
	PassthroughCluster = "PassthroughCluster"
	BlackHoleCluster   = "BlackHoleCluster"
)

const defaultConnectTimeout = 10 * time.Second

// OutboundName is Istio's outbound cluster name outbound|<port>|<subset>|<host>.
func OutboundName(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// InboundName is Istio's inbound cluster name inbound|<port>||.
func InboundName(port uint32) string { return fmt.Sprintf("inbound|%d||", port) }

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

// outboundClusters builds the default cluster and one per subset for a
// service port, with their endpoints when discovered over EDS.
func (g *gen) outboundClusters(svc *mesh.Service, port mesh.Port) {
	drCfg := g.ix.DestinationRule(svc.Hostname, g.proxy.Namespace, svc.Namespace)
	var dr *networking.DestinationRule
	if drCfg != nil {
		dr = drCfg.Spec.(*networking.DestinationRule)
	}
	g.outboundCluster(svc, port, dr, "", nil)
	for _, s := range dr.GetSubsets() {
		g.outboundCluster(svc, port, dr, s.GetName(), s.GetLabels())
	}
}

func (g *gen) outboundCluster(svc *mesh.Service, port mesh.Port, dr *networking.DestinationRule, subset string, labels map[string]string) {
	name := OutboundName(port.Number, subset, svc.Hostname)
	pol := effectivePolicy(dr, subset, port.Number)
	c := &cluster.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(defaultConnectTimeout),
	}
	var eps *endpoint.ClusterLoadAssignment
	dns := svc.Resolution == networking.ServiceEntry_DNS || svc.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN
	if dns || g.part&partEndpoints != 0 {
		eps = g.endpoints(name, svc, port, labels, pol)
	}
	switch {
	case svc.Resolution == networking.ServiceEntry_DNS && g.proxy.Type != mesh.ProxyGRPC:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
		c.LoadAssignment = dnsAssignment(name, svc, port, eps)
	case svc.Resolution == networking.ServiceEntry_DNS || svc.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_LOGICAL_DNS}
		c.LoadAssignment = dnsAssignment(name, svc, port, eps)
		trimToOne(c.LoadAssignment)
	case svc.Resolution == networking.ServiceEntry_NONE && len(g.ix.snap.Members(svc)) == 0 && g.proxy.Type != mesh.ProxyGRPC:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
	default:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name}
		if g.part&partEndpoints != 0 {
			g.res.Endpoints = append(g.res.Endpoints, eps)
		}
	}
	if g.part&partConfig == 0 {
		return
	}
	if c.LbPolicy != cluster.Cluster_CLUSTER_PROVIDED {
		g.applyLB(c, pol.lb)
	}
	applyPool(c, pol.pool, port.Protocol, g.proxy.Type)
	applyOutlier(c, pol.od)
	c.TransportSocket = g.upstreamTLS(svc, port, subset, pol.tls)
	g.res.Clusters = append(g.res.Clusters, c)
}

// dnsAssignment lists the endpoints' addresses (or the host itself when
// the service has none) for DNS clusters.
func dnsAssignment(name string, svc *mesh.Service, port mesh.Port, eps *endpoint.ClusterLoadAssignment) *endpoint.ClusterLoadAssignment {
	if len(eps.GetEndpoints()) > 0 {
		eps.ClusterName = name
		return eps
	}
	return &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
		LoadBalancingWeight: wrapperspb.UInt32(1),
		LbEndpoints:         []*endpoint.LbEndpoint{lbEndpoint(svc.Hostname, port.Number, 1)},
	}}}
}

// trimToOne keeps one locality with one endpoint (LOGICAL_DNS requires it).
func trimToOne(cla *endpoint.ClusterLoadAssignment) {
	if len(cla.Endpoints) == 0 {
		return
	}
	l := cla.Endpoints[0]
	l.LbEndpoints = l.LbEndpoints[:1]
	cla.Endpoints = cla.Endpoints[:1]
}

func (g *gen) applyLB(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	c.LbPolicy = cluster.Cluster_LEAST_REQUEST
	if g.proxy.Type == mesh.ProxyGRPC {
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		g.applyHash(c, ch)
		return
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
		c.LbPolicy = cluster.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = cluster.Cluster_RANDOM
		if g.proxy.Type == mesh.ProxyGRPC {
			// grpc has no RANDOM policy; round robin is its closest.
			c.LbPolicy = cluster.Cluster_ROUND_ROBIN
		}
	}
	// Locality weights only matter with distribute (Istio sets the config
	// then, since it changes how e.g. LEAST_REQUEST picks hosts); grpc
	// always balances localities by weight.
	if s, _ := localityLB(policy{lb: lb}); distributes(s) && g.proxy.Type != mesh.ProxyGRPC {
		c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{LocalityConfigSpecifier: &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}}
	}
}

func (g *gen) applyHash(c *cluster.Cluster, ch *networking.LoadBalancerSettings_ConsistentHashLB) {
	if m := ch.GetMaglev(); m != nil && g.proxy.Type != mesh.ProxyGRPC {
		c.LbPolicy = cluster.Cluster_MAGLEV
		if m.GetTableSize() > 0 {
			c.LbConfig = &cluster.Cluster_MaglevLbConfig_{MaglevLbConfig: &cluster.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(m.GetTableSize())}}
		}
		return
	}
	c.LbPolicy = cluster.Cluster_RING_HASH
	size := ch.GetRingHash().GetMinimumRingSize()
	if size == 0 {
		size = ch.GetMinimumRingSize() //nolint:staticcheck // deprecated field still accepted
	}
	if size == 0 {
		size = 1024
	}
	c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(size), HashFunction: cluster.Cluster_RingHashLbConfig_XX_HASH,
	}}
}

// applyPool maps connectionPool to circuit breakers and protocol options.
func applyPool(c *cluster.Cluster, pool *networking.ConnectionPoolSettings, proto mesh.Protocol, pt mesh.ProxyType) {
	if t := pool.GetTcp().GetConnectTimeout(); t != nil {
		c.ConnectTimeout = t
	}
	th := &cluster.CircuitBreakers_Thresholds{}
	set := false
	u32 := func(v int32) *wrapperspb.UInt32Value { set = true; return wrapperspb.UInt32(uint32(v)) }
	if v := pool.GetTcp().GetMaxConnections(); v > 0 {
		th.MaxConnections = u32(v)
	}
	if v := pool.GetHttp().GetHttp1MaxPendingRequests(); v > 0 {
		th.MaxPendingRequests = u32(v)
	}
	if v := pool.GetHttp().GetHttp2MaxRequests(); v > 0 {
		th.MaxRequests = u32(v)
	}
	if v := pool.GetHttp().GetMaxRetries(); v > 0 {
		th.MaxRetries = u32(v)
	}
	if set {
		c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{th}}
	}
	if ka := pool.GetTcp().GetTcpKeepalive(); ka != nil && pt != mesh.ProxyGRPC {
		k := &core.TcpKeepalive{}
		if ka.GetProbes() > 0 {
			k.KeepaliveProbes = wrapperspb.UInt32(ka.GetProbes())
		}
		if ka.GetTime() != nil {
			k.KeepaliveTime = wrapperspb.UInt32(uint32(ka.GetTime().AsDuration().Seconds()))
		}
		if ka.GetInterval() != nil {
			k.KeepaliveInterval = wrapperspb.UInt32(uint32(ka.GetInterval().AsDuration().Seconds()))
		}
		c.UpstreamConnectionOptions = &cluster.UpstreamConnectionOptions{TcpKeepalive: k}
	}
	if pt == mesh.ProxyGRPC {
		return
	}
	applyProtocolOptions(c, pool.GetHttp(), proto)
}

func applyProtocolOptions(c *cluster.Cluster, h *networking.ConnectionPoolSettings_HTTPSettings, proto mesh.Protocol) {
	common := &core.HttpProtocolOptions{}
	useCommon := false
	if v := h.GetMaxRequestsPerConnection(); v > 0 {
		common.MaxRequestsPerConnection, useCommon = wrapperspb.UInt32(uint32(v)), true
	}
	if t := h.GetIdleTimeout(); t != nil {
		common.IdleTimeout, useCommon = t, true
	}
	h2 := proto == mesh.ProtocolHTTP2 || proto == mesh.ProtocolGRPC || h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE
	if !useCommon && !h2 {
		return
	}
	opts := &httpopts.HttpProtocolOptions{}
	if useCommon {
		opts.CommonHttpProtocolOptions = common
	}
	if h2 {
		h2o := &core.Http2ProtocolOptions{}
		if v := h.GetMaxConcurrentStreams(); v > 0 {
			h2o.MaxConcurrentStreams = wrapperspb.UInt32(uint32(v))
		}
		opts.UpstreamProtocolOptions = &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2o},
		}}
	} else {
		opts.UpstreamProtocolOptions = &httpopts.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpopts.HttpProtocolOptions_UseDownstreamHttpConfig{}}
	}
	c.TypedExtensionProtocolOptions = map[string]*anyType{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

// applyOutlier maps outlierDetection (Istio defaults for unset fields).
func applyOutlier(c *cluster.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &cluster.OutlierDetection{
		Interval:                           od.GetInterval(),
		BaseEjectionTime:                   od.GetBaseEjectionTime(),
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
	}
	if v := od.GetConsecutive_5XxErrors(); v != nil {
		out.Consecutive_5Xx = v
		if v.GetValue() > 0 {
			out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
		}
	} else if v := od.GetConsecutiveErrors(); v > 0 { //nolint:staticcheck // deprecated field still accepted
		out.Consecutive_5Xx = wrapperspb.UInt32(uint32(v))
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
	}
	if v := od.GetConsecutiveGatewayErrors(); v != nil {
		out.ConsecutiveGatewayFailure = v
		if v.GetValue() > 0 {
			out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		}
	}
	if v := od.GetMaxEjectionPercent(); v > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(min(v, 100)))
	}
	if v := od.GetMinHealthPercent(); v > 0 {
		c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{HealthyPanicThreshold: &typePercent{Value: float64(v)}}
	}
	c.OutlierDetection = out
}

// passthroughClusters are the ALLOW_ANY/REGISTRY_ONLY sinks of a sidecar.
func passthroughClusters() []*cluster.Cluster {
	return []*cluster.Cluster{
		{
			Name: BlackHoleCluster, ConnectTimeout: durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		},
		{
			Name: PassthroughCluster, ConnectTimeout: durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
			LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		},
	}
}

// InboundPassthroughCluster sends inbound connections to ports no service
// declares to the workload at their original destination, from
// 127.0.0.6 (Istio's InboundPassthroughCluster). The sidecar's capture
// (package redirect, like istio-iptables) lets that source through over
// lo but sends the proxy's other connections to its own pod IP to the
// inbound port — without the bind such a connection would come back to
// virtualInbound and loop.
const InboundPassthroughCluster = "InboundPassthroughCluster"

// InboundPassthroughBind is the source address of
// InboundPassthroughCluster's connections.
const InboundPassthroughBind = "127.0.0.6"

func inboundPassthroughCluster() *cluster.Cluster {
	return &cluster.Cluster{
		Name: InboundPassthroughCluster, ConnectTimeout: durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		UpstreamBindConfig:   &core.BindConfig{SourceAddress: &core.SocketAddress{Address: InboundPassthroughBind, PortSpecifier: &core.SocketAddress_PortValue{}}},
	}
}

// inboundCluster sends inbound traffic for a workload port to the local
// workload. It is named by the workload (target) port, as Istio names it
// and as the inbound chain of that port refers to it.
func inboundCluster(target, upstream uint32) *cluster.Cluster {
	name := InboundName(target)
	return &cluster.Cluster{
		Name: name, ConnectTimeout: durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{lbEndpoint("127.0.0.1", upstream, 0)},
		}}},
	}
}

func sortedUnique(in []string) []string {
	set := map[string]bool{}
	for _, s := range in {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
