package translate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// policy is the effective DestinationRule traffic policy for one cluster:
// top-level, then port-level, then the subset's (and its port-level),
// each later layer replacing whole fields, as Istio merges them.
type policy struct {
	lb   *networking.LoadBalancerSettings
	pool *networking.ConnectionPoolSettings
	od   *networking.OutlierDetection
	tls  *networking.ClientTLSSettings
}

func effectivePolicy(dr *networking.DestinationRule, subset string, port uint32) policy {
	var p policy
	if dr == nil {
		return p
	}
	p.apply(dr.GetTrafficPolicy(), port)
	for _, s := range dr.GetSubsets() {
		if s.GetName() == subset {
			p.apply(s.GetTrafficPolicy(), port)
		}
	}
	return p
}

func (p *policy) apply(tp *networking.TrafficPolicy, port uint32) {
	if tp == nil {
		return
	}
	p.set(tp.GetLoadBalancer(), tp.GetConnectionPool(), tp.GetOutlierDetection(), tp.GetTls())
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			p.set(pl.GetLoadBalancer(), pl.GetConnectionPool(), pl.GetOutlierDetection(), pl.GetTls())
		}
	}
}

func (p *policy) set(lb *networking.LoadBalancerSettings, pool *networking.ConnectionPoolSettings, od *networking.OutlierDetection, tls *networking.ClientTLSSettings) {
	if lb != nil {
		p.lb = lb
	}
	if pool != nil {
		p.pool = pool
	}
	if od != nil {
		p.od = od
	}
	if tls != nil {
		p.tls = tls
	}
}

// subsetLabels returns the labels of a named subset, and whether it exists.
func subsetLabels(dr *networking.DestinationRule, subset string) (map[string]string, bool) {
	for _, s := range dr.GetSubsets() {
		if s.GetName() == subset {
			return s.GetLabels(), true
		}
	}
	return nil, false
}
