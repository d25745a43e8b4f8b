package cli

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wardmesh/ward/xds/translate"
)

// none marks an empty table cell.
const none = "-"

func pickListeners(r *translate.Resources, name string) []proto.Message {
	return pick(r.Listeners, (*listener.Listener).GetName, name)
}

// pickRoutes picks the RDS route configurations, then those inlined in
// listeners (a sidecar's inbound routes, as istioctl lists them too).
func pickRoutes(r *translate.Resources, name string) []proto.Message {
	return append(pick(r.Routes, (*route.RouteConfiguration).GetName, name),
		pick(inlineRoutes(r.Listeners), (*route.RouteConfiguration).GetName, name)...)
}

// inlineRoutes returns the route configurations inlined in the HTTP
// connection managers of ls.
func inlineRoutes(ls []*listener.Listener) []*route.RouteConfiguration {
	var out []*route.RouteConfiguration
	add := func(a *anypb.Any) {
		var hcm hcmv3.HttpConnectionManager
		if a != nil && a.UnmarshalTo(&hcm) == nil && hcm.GetRouteConfig() != nil {
			out = append(out, hcm.GetRouteConfig())
		}
	}
	for _, l := range ls {
		add(l.GetApiListener().GetApiListener())
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(chains[:len(chains):len(chains)], d)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				add(f.GetTypedConfig())
			}
		}
	}
	return out
}

func pickClusters(r *translate.Resources, name string) []proto.Message {
	return pick(r.Clusters, (*cluster.Cluster).GetName, name)
}

func pickEndpoints(r *translate.Resources, name string) []proto.Message {
	return pick(r.Endpoints, (*endpoint.ClusterLoadAssignment).GetClusterName, name)
}

// row writes tab-separated cells.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// listenerTable prints one row per filter chain (istioctl's layout):
// which connections it matches, whether it terminates TLS, and where the
// traffic goes.
func listenerTable(w io.Writer, ms []proto.Message) error {
	row(w, "NAME", "ADDRESS:PORT", "CHAINS", "CHAIN", "MATCH", "TLS", "DESTINATION")
	for _, m := range ms {
		l := m.(*listener.Listener)
		addr, n := listenerAddress(l), strconv.Itoa(len(l.GetFilterChains()))
		if api := l.GetApiListener().GetApiListener(); api != nil {
			row(w, l.GetName(), "(api listener)", "0", none, none, none, httpDestination(api))
			continue
		}
		for _, fc := range l.GetFilterChains() {
			row(w, l.GetName(), addr, n, orNone(fc.GetName()), chainMatch(fc.GetFilterChainMatch()),
				downstreamTLS(fc.GetTransportSocket()), chainDestination(fc.GetFilters()))
		}
		if fc := l.GetDefaultFilterChain(); fc != nil {
			row(w, l.GetName(), addr, n, "(default) "+fc.GetName(), "unmatched",
				downstreamTLS(fc.GetTransportSocket()), chainDestination(fc.GetFilters()))
		}
	}
	return nil
}

func listenerAddress(l *listener.Listener) string {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return none
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

// chainMatch summarises a FilterChainMatch; "ALL" when it matches every
// connection.
func chainMatch(m *listener.FilterChainMatch) string {
	var parts []string
	if p := m.GetDestinationPort(); p != nil {
		parts = append(parts, "port="+strconv.FormatUint(uint64(p.GetValue()), 10))
	}
	for _, c := range m.GetPrefixRanges() {
		parts = append(parts, "dst="+c.GetAddressPrefix()+"/"+strconv.FormatUint(uint64(c.GetPrefixLen().GetValue()), 10))
	}
	if t := m.GetTransportProtocol(); t != "" {
		parts = append(parts, "transport="+t)
	}
	if s := m.GetServerNames(); len(s) > 0 {
		parts = append(parts, "sni="+strings.Join(s, ","))
	}
	if a := m.GetApplicationProtocols(); len(a) > 0 {
		parts = append(parts, "alpn="+strings.Join(a, ","))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, " ")
}

// downstreamTLS says what a chain's transport socket terminates: mTLS
// (client certificate required), TLS, or none (plaintext).
func downstreamTLS(ts *core.TransportSocket) string {
	if ts == nil {
		return "none"
	}
	var ctx tlsv3.DownstreamTlsContext
	if ts.GetTypedConfig().UnmarshalTo(&ctx) != nil {
		return ts.GetName()
	}
	if ctx.GetRequireClientCertificate().GetValue() {
		return "mTLS"
	}
	return "TLS"
}

// chainDestination names where a chain's terminal network filter sends
// traffic: an RDS route, an inline route, or a TCP cluster.
func chainDestination(fs []*listener.Filter) string {
	for _, f := range fs {
		a := f.GetTypedConfig()
		if a == nil {
			continue
		}
		if d := httpDestination(a); d != "" {
			return d
		}
		var tcp tcpv3.TcpProxy
		if a.UnmarshalTo(&tcp) == nil {
			if c := tcp.GetCluster(); c != "" {
				return "cluster: " + c
			}
			return "clusters: " + tcpWeighted(tcp.GetWeightedClusters())
		}
	}
	return none
}

// httpDestination describes an HTTP connection manager's routes; "" when
// a is not one.
func httpDestination(a *anypb.Any) string {
	var hcm hcmv3.HttpConnectionManager
	if a.UnmarshalTo(&hcm) != nil {
		return ""
	}
	if rds := hcm.GetRds(); rds != nil {
		return "route: " + rds.GetRouteConfigName()
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		return fmt.Sprintf("inline route: %s (%d virtual hosts)", orNone(rc.GetName()), len(rc.GetVirtualHosts()))
	}
	return "http"
}

func tcpWeighted(wc *tcpv3.TcpProxy_WeightedCluster) string {
	var total uint64
	for _, c := range wc.GetClusters() {
		total += uint64(c.GetWeight())
	}
	parts := make([]string, 0, len(wc.GetClusters()))
	for _, c := range wc.GetClusters() {
		parts = append(parts, c.GetName()+" "+percent(uint64(c.GetWeight()), total))
	}
	return strings.Join(parts, ", ")
}

// routeTable prints one row per route of each virtual host.
func routeTable(w io.Writer, ms []proto.Message) error {
	row(w, "ROUTE", "VIRTUAL HOST", "DOMAINS", "MATCH", "DESTINATION")
	for _, m := range ms {
		rc := m.(*route.RouteConfiguration)
		if len(rc.GetVirtualHosts()) == 0 {
			row(w, rc.GetName(), none, none, none, none)
		}
		for _, vh := range rc.GetVirtualHosts() {
			domains := shortList(vh.GetDomains(), 3)
			if len(vh.GetRoutes()) == 0 {
				row(w, rc.GetName(), vh.GetName(), domains, none, none)
			}
			for _, r := range vh.GetRoutes() {
				row(w, rc.GetName(), vh.GetName(), domains, routeMatch(r.GetMatch()), routeDestination(r))
			}
		}
	}
	return nil
}

// shortList joins up to n items and counts the rest.
func shortList(items []string, n int) string {
	if len(items) == 0 {
		return none
	}
	if len(items) <= n {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s +%d more", strings.Join(items[:n], ","), len(items)-n)
}

// routeMatch summarises a route's path and header conditions: "/api*" is
// a prefix, "/api" an exact path.
func routeMatch(m *route.RouteMatch) string {
	var path string
	switch {
	case m.GetPrefix() != "" || m.GetPathSpecifier() == nil:
		path = m.GetPrefix() + "*"
	case m.GetPath() != "":
		path = m.GetPath()
	case m.GetSafeRegex() != nil:
		path = "regex:" + m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		path = m.GetPathSeparatedPrefix() + "/*"
	case m.GetConnectMatcher() != nil:
		path = "CONNECT"
	default:
		path = "?"
	}
	parts := []string{path}
	for _, h := range m.GetHeaders() {
		parts = append(parts, headerMatch(h))
	}
	for _, q := range m.GetQueryParameters() {
		parts = append(parts, "?"+q.GetName()+stringMatch(q.GetStringMatch()))
	}
	return strings.Join(parts, " ")
}

func headerMatch(h *route.HeaderMatcher) string {
	s := h.GetName()
	switch {
	case h.GetStringMatch() != nil:
		s += stringMatch(h.GetStringMatch())
	case h.GetPresentMatch():
		s += " present"
	case h.GetExactMatch() != "": //nolint:staticcheck // older configs
		s += "=" + h.GetExactMatch() //nolint:staticcheck // older configs
	}
	if h.GetInvertMatch() {
		s = "!" + s
	}
	return s
}

func stringMatch(m *matcher.StringMatcher) string {
	switch {
	case m == nil:
		return " present"
	case m.GetExact() != "":
		return "=" + m.GetExact()
	case m.GetPrefix() != "":
		return "=" + m.GetPrefix() + "*"
	case m.GetSuffix() != "":
		return "=*" + m.GetSuffix()
	case m.GetContains() != "":
		return "~" + m.GetContains()
	case m.GetSafeRegex() != nil:
		return "~regex:" + m.GetSafeRegex().GetRegex()
	}
	return "=\"\""
}

// routeDestination names a route's action: its cluster(s) with weights,
// a redirect or a direct response.
func routeDestination(r *route.Route) string {
	switch {
	case r.GetRedirect() != nil:
		rd := r.GetRedirect()
		return "redirect " + rd.GetHostRedirect() + rd.GetPathRedirect() + rd.GetPrefixRewrite()
	case r.GetDirectResponse() != nil:
		return "direct response " + strconv.FormatUint(uint64(r.GetDirectResponse().GetStatus()), 10)
	case r.GetNonForwardingAction() != nil:
		return "non-forwarding"
	}
	ra := r.GetRoute()
	switch {
	case ra.GetCluster() != "":
		return ra.GetCluster()
	case ra.GetClusterHeader() != "":
		return "cluster from header " + ra.GetClusterHeader()
	case ra.GetWeightedClusters() != nil:
		cs := ra.GetWeightedClusters().GetClusters()
		var total uint64
		for _, c := range cs {
			total += uint64(c.GetWeight().GetValue())
		}
		parts := make([]string, 0, len(cs))
		for _, c := range cs {
			parts = append(parts, c.GetName()+" "+percent(uint64(c.GetWeight().GetValue()), total))
		}
		return strings.Join(parts, ", ")
	}
	return none
}

// percent is w of total as a percentage ("90%", "33.3%").
func percent(w, total uint64) string {
	if total == 0 {
		return "0%"
	}
	return strings.TrimSuffix(strconv.FormatFloat(float64(w)*100/float64(total), 'f', 1, 64), ".0") + "%"
}

// clusterTable prints one row per cluster.
func clusterTable(w io.Writer, ms []proto.Message) error {
	row(w, "NAME", "TYPE", "SUBSET", "TLS", "SAN")
	for _, m := range ms {
		c := m.(*cluster.Cluster)
		tls, san := upstreamTLS(c.GetTransportSocket())
		if len(c.GetTransportSocketMatches()) > 0 {
			tls, san = socketMatches(c.GetTransportSocketMatches())
		}
		row(w, c.GetName(), clusterType(c), clusterSubset(c.GetName()), tls, san)
	}
	return nil
}

func clusterType(c *cluster.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

// clusterSubset is the subset part of a Ward cluster name
// (direction|port|subset|host).
func clusterSubset(name string) string {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[2] == "" {
		return none
	}
	return parts[2]
}

// upstreamTLS says what a cluster's transport socket originates: mTLS
// (it presents a certificate), TLS, or none; and the SANs it accepts.
func upstreamTLS(ts *core.TransportSocket) (mode, san string) {
	if ts == nil {
		return "none", none
	}
	var ctx tlsv3.UpstreamTlsContext
	if ts.GetTypedConfig().UnmarshalTo(&ctx) != nil {
		return ts.GetName(), none
	}
	cc := ctx.GetCommonTlsContext()
	mode = "TLS"
	if len(cc.GetTlsCertificateSdsSecretConfigs()) > 0 || len(cc.GetTlsCertificates()) > 0 || cc.GetTlsCertificateProviderInstance() != nil {
		mode = "mTLS"
	}
	return mode, sanList(cc)
}

// sanList lists the SAN matchers of a TLS context's validation context.
func sanList(cc *tlsv3.CommonTlsContext) string {
	vc := cc.GetValidationContext()
	if c := cc.GetCombinedValidationContext(); c != nil {
		vc = c.GetDefaultValidationContext()
	}
	var out []string
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		out = append(out, strings.TrimPrefix(stringMatch(m.GetMatcher()), "="))
	}
	for _, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // proxyless gRPC reads only this field
		out = append(out, strings.TrimPrefix(stringMatch(m), "="))
	}
	if len(out) == 0 {
		return none
	}
	return strings.Join(out, ",")
}

// socketMatches summarises transport_socket_matches: each variant's TLS
// mode under its match name.
func socketMatches(ms []*cluster.Cluster_TransportSocketMatch) (mode, san string) {
	modes := make([]string, 0, len(ms))
	sans := []string{}
	for _, m := range ms {
		t, s := upstreamTLS(m.GetTransportSocket())
		modes = append(modes, m.GetName()+":"+t)
		if s != none {
			sans = append(sans, s)
		}
	}
	if len(sans) == 0 {
		return strings.Join(modes, ","), none
	}
	return strings.Join(modes, ","), strings.Join(sans, ",")
}

// endpointTable prints one row per endpoint.
func endpointTable(w io.Writer, ms []proto.Message) error {
	row(w, "CLUSTER", "ENDPOINT", "HEALTH", "LOCALITY", "PRIORITY", "WEIGHT")
	for _, m := range ms {
		cla := m.(*endpoint.ClusterLoadAssignment)
		for _, le := range cla.GetEndpoints() {
			loc, prio := locality(le.GetLocality()), strconv.FormatUint(uint64(le.GetPriority()), 10)
			for _, e := range le.GetLbEndpoints() {
				row(w, cla.GetClusterName(), endpointAddress(e), e.GetHealthStatus().String(), loc, prio, endpointWeight(e))
			}
		}
	}
	return nil
}

func locality(l *core.Locality) string {
	parts := []string{l.GetRegion(), l.GetZone(), l.GetSubZone()}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, "/")
}

func endpointAddress(e *endpoint.LbEndpoint) string {
	sa := e.GetEndpoint().GetAddress().GetSocketAddress()
	if sa == nil {
		return none
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

// endpointWeight is the load-balancing weight (Envoy's default 1).
func endpointWeight(e *endpoint.LbEndpoint) string {
	if w := e.GetLoadBalancingWeight(); w != nil {
		return strconv.FormatUint(uint64(w.GetValue()), 10)
	}
	return "1"
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}
