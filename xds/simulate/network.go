package simulate

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthznet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// runNetworkFilters runs the chain's network filters in order until one
// decides: RBAC and ext_authz may close the connection; tcp_proxy and the
// HTTP connection manager are terminal.
func (s *Simulator) runNetworkFilters(fc *listener.FilterChain, a *attrs, res *Result) {
	for _, f := range fc.GetFilters() {
		switch cfg := unpack(f.GetTypedConfig()).(type) {
		case *rbacnet.RBAC:
			if !netRBAC(f.GetName(), cfg, a, res) {
				return
			}
		case *extauthznet.ExtAuthz:
			if !s.netExtAuthz(f.GetName(), cfg, a, res) {
				return
			}
		case *tcpproxy.TcpProxy:
			tcpProxy(cfg, res)
			return
		case *hcm.HttpConnectionManager:
			s.runHCM(cfg, a, res)
			return
		default:
			res.tracef("network filter %s: not simulated, passes", f.GetName())
		}
	}
	res.finish(NoChain, 0, "no_terminal_filter")
}

// netRBAC runs a network RBAC filter; false means the connection closed.
func netRBAC(name string, cfg *rbacnet.RBAC, a *attrs, res *Result) bool {
	f := rbacFilter{name: name, rules: cfg.GetRules(), shadow: cfg.GetShadowRules(), shadowPrefix: cfg.GetShadowRulesStatPrefix(), namespace: netRBACNamespace}
	d := f.run(a, res)
	if d.deny {
		res.Filter, res.Policy = name, d.policy
		res.finish(Denied, 0, "rbac_access_denied")
		return false
	}
	if cfg.GetRules().GetAction().String() == "ALLOW" && d.policy != "" {
		res.Policy = d.policy
	}
	return true
}

// netExtAuthz runs a network ext_authz filter.
func (s *Simulator) netExtAuthz(name string, cfg *extauthznet.ExtAuthz, a *attrs, res *Result) bool {
	call := extAuthzCall{filter: name, enabledBy: cfg.GetFilterEnabledMetadata(), failOpen: cfg.GetFailureModeAllow()}
	if !call.gate(a, res) {
		return true
	}
	cr := CheckRequest{Filter: name, Cluster: cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName(), Network: true, Request: a.req,
		InitialMetadata: initialMetadata(cfg.GetGrpcService())}
	ok, _ := call.decide(s, cr, res)
	if !ok {
		res.Filter = name
		res.finish(Denied, 0, "ext_authz_denied")
	}
	return ok
}

// tcpProxy forwards to the cluster or records the weighted choices.
func tcpProxy(cfg *tcpproxy.TcpProxy, res *Result) {
	if c := cfg.GetCluster(); c != "" {
		res.Cluster = c
	}
	for _, w := range cfg.GetWeightedClusters().GetClusters() {
		res.Weighted = append(res.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
	}
	if res.Cluster == "" && len(res.Weighted) > 0 {
		res.Cluster = heaviest(res.Weighted)
	}
	res.tracef("tcp_proxy → %s %v", res.Cluster, res.Weighted)
	res.finish(Allowed, 0, "tcp_proxy")
}

// heaviest is the weighted choice with the largest weight (the first on
// ties): the simulator reports it as the cluster, and all choices in
// Weighted.
func heaviest(ws []WeightedCluster) string {
	best := ws[0]
	for _, w := range ws[1:] {
		if w.Weight > best.Weight {
			best = w
		}
	}
	return best.Name
}

// runAPIListener runs the HTTP connection manager of an API listener (a
// proxyless gRPC client's view of a target).
func (s *Simulator) runAPIListener(l *listener.Listener, a *attrs, res *Result) {
	h, ok := unpack(l.GetApiListener().GetApiListener()).(*hcm.HttpConnectionManager)
	if !ok {
		res.finish(NoChain, 0, "api_listener_without_hcm")
		return
	}
	s.runHCM(h, a, res)
}
