package schema

import (
	"fmt"
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func init() { validators[mesh.KindDestinationRule] = validateDestinationRule }

func validateDestinationRule(c *mesh.Config, e *errs) {
	dr, ok := c.Spec.(*networking.DestinationRule)
	if !ok {
		wrongType(e, c, "*v1alpha3.DestinationRule")
		return
	}
	if dr.GetHost() == "" {
		e.add("spec.host", "host is required")
	} else {
		checkErr(e, "spec.host", WildcardHost(dr.GetHost()))
	}
	checkTrafficPolicy(e, "spec.trafficPolicy", dr.GetTrafficPolicy())
	names := map[string]int{}
	for i, s := range dr.GetSubsets() {
		p := idx("spec.subsets", i)
		if s == nil {
			e.add(p, "subset must not be null")
			continue
		}
		if first, dup := names[s.GetName()]; dup {
			e.add(p+".name", "duplicate subset name %q (first at spec.subsets[%d])", s.GetName(), first)
		} else {
			names[s.GetName()] = i
		}
		checkSubset(e, p, s)
	}
	seen := checkExportTo(e, c.Namespace, dr.GetExportTo(), false)
	if dr.GetWorkloadSelector() != nil {
		checkWorkloadSelector(e, "spec.workloadSelector", dr.GetWorkloadSelector())
		if len(seen) > 0 && (!seen[c.Namespace] || len(seen) > 1) {
			e.add("spec.exportTo", "a destination rule with a workload selector can only be exported to its own namespace")
		}
	}
}

func checkSubset(e *errs, p string, s *networking.Subset) {
	switch n := s.GetName(); {
	case n == "":
		e.add(p+".name", "subset name is required")
	case !isDNSLabel(n):
		e.add(p+".name", "invalid subset name %q (must be a DNS-1123 label)", n)
	}
	checkLabels(e, p+".labels", s.GetLabels())
	checkTrafficPolicy(e, p+".trafficPolicy", s.GetTrafficPolicy())
}

func checkTrafficPolicy(e *errs, p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.GetOutlierDetection() == nil && tp.GetConnectionPool() == nil && tp.GetLoadBalancer() == nil &&
		tp.GetTls() == nil && tp.GetPortLevelSettings() == nil && tp.GetTunnel() == nil && tp.GetProxyProtocol() == nil &&
		tp.GetRetryBudget() == nil {
		e.add(p, "traffic policy must have at least one field")
		return
	}
	if tp.GetTunnel() != nil && tp.GetProxyProtocol() != nil {
		e.add(p, "tunnel and proxyProtocol must not be set together")
	}
	checkOutlier(e, p+".outlierDetection", tp.GetOutlierDetection())
	checkConnectionPool(e, p+".connectionPool", tp.GetConnectionPool())
	checkLoadBalancer(e, p+".loadBalancer", tp.GetLoadBalancer(), tp.GetOutlierDetection())
	checkClientTLS(e, p+".tls", tp.GetTls())
	checkPortLevelSettings(e, p+".portLevelSettings", tp.GetPortLevelSettings())
	checkTunnel(e, p+".tunnel", tp.GetTunnel())
	if pp := tp.GetProxyProtocol(); pp != nil {
		if _, ok := networking.TrafficPolicy_ProxyProtocol_VERSION_name[int32(pp.GetVersion())]; !ok {
			e.add(p+".proxyProtocol.version", "invalid proxy protocol version %d", pp.GetVersion())
		}
	}
	if rb := tp.GetRetryBudget(); rb != nil {
		if v := rb.GetPercent(); v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
			e.add(p+".retryBudget.percent", "retry budget percent %v is not in range 0..100", v.GetValue())
		}
		checkDuration(e, p+".retryBudget.budgetInterval", rb.GetBudgetInterval())
	}
}

func checkTunnel(e *errs, p string, t *networking.TrafficPolicy_TunnelSettings) {
	if t == nil {
		return
	}
	if pr := t.GetProtocol(); pr != "" && pr != "CONNECT" && pr != "POST" {
		e.add(p+".protocol", "tunnel protocol must be CONNECT or POST, got %q", pr)
	}
	if FQDN(t.GetTargetHost()) != nil && !isIP(t.GetTargetHost()) {
		e.add(p+".targetHost", "tunnel target host %q must be a valid FQDN or IP address", t.GetTargetHost())
	}
	checkPort(e, p+".targetPort", int64(t.GetTargetPort()))
}

func checkOutlier(e *errs, p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	checkDuration(e, p+".baseEjectionTime", o.GetBaseEjectionTime())
	checkDuration(e, p+".interval", o.GetInterval())
	if o.GetConsecutiveErrors() != 0 { //nolint:staticcheck // Istio still accepts it
		e.warn(p+".consecutiveErrors", "consecutiveErrors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors")
	}
	if !o.GetSplitExternalLocalOriginErrors() && o.GetConsecutiveLocalOriginFailures().GetValue() > 0 {
		e.add(p+".consecutiveLocalOriginFailures", "consecutiveLocalOriginFailures is set but splitExternalLocalOriginErrors is false")
	}
	checkFailurePercentage(e, p+".failurePercentageThreshold", o)
	checkPercent(e, p+".maxEjectionPercent", o.GetMaxEjectionPercent())
	checkPercent(e, p+".minHealthPercent", o.GetMinHealthPercent())
	for i, c := range o.GetOutlierDetectionHttpErrorCodes() {
		if c < 100 || c > 599 {
			e.add(idx(p+".outlierDetectionHttpErrorCodes", i), "HTTP status %d is not in range 100..599", c)
		}
	}
}

func checkPercent(e *errs, p string, v int32) {
	if v < 0 || v > 100 {
		e.add(p, "percentage %d is not in range 0..100", v)
	}
}

func checkConnectionPool(e *errs, p string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.GetHttp() == nil && cp.GetTcp() == nil {
		e.add(p, "connection pool must have at least one field")
		return
	}
	if h := cp.GetHttp(); h != nil {
		hp := p + ".http"
		for _, f := range []struct {
			name string
			v    int32
		}{
			{"http1MaxPendingRequests", h.GetHttp1MaxPendingRequests()}, {"http2MaxRequests", h.GetHttp2MaxRequests()},
			{"maxRequestsPerConnection", h.GetMaxRequestsPerConnection()}, {"maxRetries", h.GetMaxRetries()},
			{"maxConcurrentStreams", h.GetMaxConcurrentStreams()},
		} {
			if f.v < 0 {
				e.add(hp+"."+f.name, "%s must be non-negative, got %d", f.name, f.v)
			}
		}
		checkDuration(e, hp+".idleTimeout", h.GetIdleTimeout())
		if h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.GetUseClientProtocol() {
			e.add(hp+".useClientProtocol", "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
		}
		if ka := h.GetHttp2KeepAlive(); ka != nil {
			checkDuration(e, hp+".http2KeepAlive.interval", ka.GetInterval())
			checkDuration(e, hp+".http2KeepAlive.timeout", ka.GetTimeout())
		}
	}
	if t := cp.GetTcp(); t != nil {
		tp := p + ".tcp"
		if t.GetMaxConnections() < 0 {
			e.add(tp+".maxConnections", "maxConnections must be non-negative, got %d", t.GetMaxConnections())
		}
		checkDuration(e, tp+".connectTimeout", t.GetConnectTimeout())
		checkDuration(e, tp+".maxConnectionDuration", t.GetMaxConnectionDuration())
		checkDuration(e, tp+".idleTimeout", t.GetIdleTimeout())
		if ka := t.GetTcpKeepalive(); ka != nil {
			checkDuration(e, tp+".tcpKeepalive.time", ka.GetTime())
			checkDuration(e, tp+".tcpKeepalive.interval", ka.GetInterval())
		}
	}
}

// maxMaglevTable is Envoy's bound on a Maglev table size.
const maxMaglevTable = 5000011

func checkLoadBalancer(e *errs, p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p + ".consistentHash"
		if c, ok := ch.GetHashKey().(*networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie); ok && c.HttpCookie.GetName() == "" {
			e.add(cp+".httpCookie.name", "name is required for httpCookie")
		}
		if c, ok := ch.GetHashKey().(*networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName); ok {
			checkErr(e, cp+".httpHeaderName", HeaderName(c.HttpHeaderName))
		}
		if c, ok := ch.GetHashKey().(*networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName); ok && c.HttpQueryParameterName == "" {
			e.add(cp+".httpQueryParameterName", "query parameter name must not be empty")
		}
		if ch.GetMinimumRingSize() != 0 { //nolint:staticcheck // Istio still accepts it
			e.warn(cp+".minimumRingSize", "minimumRingSize is deprecated, use ringHash.minimumRingSize")
			if ch.GetHashAlgorithm() != nil {
				e.add(cp+".minimumRingSize", "only one of minimumRingSize or maglev/ringHash can be specified")
			}
		}
		if ml := ch.GetMaglev(); ml != nil {
			checkMaglev(e, cp+".maglev.tableSize", ml.GetTableSize())
		}
	}
	checkBackendUtilization(e, p+".backendUtilization", lb.GetBackendUtilization())
	checkLocalityLB(e, p+".localityLbSetting", lb.GetLocalityLbSetting(), outlier)
	checkDuration(e, p+".warmupDurationSecs", lb.GetWarmupDurationSecs())
	if lb.GetWarmupDurationSecs() != nil && lb.GetWarmup() != nil {
		e.add(p, "only one of warmupDurationSecs or warmup can be set")
	}
	if w := lb.GetWarmup(); w != nil {
		if w.GetDuration() == nil {
			e.add(p+".warmup.duration", "warmup duration is required")
		}
		checkDuration(e, p+".warmup.duration", w.GetDuration())
		if mp := w.GetMinimumPercent(); mp != nil && (mp.GetValue() < 0 || mp.GetValue() > 100) {
			e.add(p+".warmup.minimumPercent", "minimumPercent %v is not in range 0..100", mp.GetValue())
		}
		if a := w.GetAggression(); a != nil && a.GetValue() < 1 {
			e.add(p+".warmup.aggression", "aggression %v must be at least 1", a.GetValue())
		}
	}
}

func checkMaglev(e *errs, p string, n uint64) {
	switch {
	case n == 0:
		e.add(p, "tableSize must be set for maglev")
	case n >= maxMaglevTable:
		e.add(p, "tableSize %d must be less than %d", n, maxMaglevTable)
	case !isPrime(n):
		e.add(p, "tableSize %d must be a prime number", n)
	}
}

func isPrime(x uint64) bool {
	if x < 2 {
		return false
	}
	if x < 4 {
		return true
	}
	if x%2 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

var topologyLabels = map[string]bool{
	"topology.kubernetes.io/region": true, "topology.kubernetes.io/zone": true, "topology.istio.io/subzone": true,
}

func checkLocalityLB(e *errs, p string, lb *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.GetDistribute()) > 0 && len(lb.GetFailover()) > 0 {
		e.add(p, "cannot set both distribute and failover")
		return
	}
	if len(lb.GetFailover()) > 0 {
		for i, l := range lb.GetFailoverPriority() {
			if topologyLabels[l] {
				e.add(idx(p+".failoverPriority", i), "cannot set both failover and topology label %q in failoverPriority", l)
			}
		}
	}
	var from []string
	for i, d := range lb.GetDistribute() {
		dp := idx(p+".distribute", i)
		from = append(from, d.GetFrom())
		var total uint32
		for _, loc := range sortedStrKeys(d.GetTo()) {
			w := d.GetTo()[loc]
			if w == 0 || w > 100 {
				e.add(key(dp+".to", loc), "locality weight %d must be in range 1..100", w)
			}
			total += w
		}
		if total != 100 {
			e.add(dp+".to", "total locality weight %d != 100", total)
		}
		checkErr(e, dp+".to", localities(sortedStrKeys(d.GetTo())))
	}
	checkErr(e, p+".distribute", localities(from))
	if (len(lb.GetFailover()) > 0 || len(lb.GetFailoverPriority()) > 0) && outlier == nil {
		e.warn(p, "outlier detection policy must be provided for failover")
	}
	for i, f := range lb.GetFailover() {
		fp := idx(p+".failover", i)
		switch {
		case f.GetFrom() == f.GetTo():
			e.add(fp, "failover from and to must be different regions, both are %q", f.GetFrom())
		case strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/"):
			e.add(fp, "failover may only name regions, got %q -> %q", f.GetFrom(), f.GetTo())
		case strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*"):
			e.add(fp, "failover regions must not contain '*'")
		}
	}
}

// localities checks region[/zone[/subzone]] patterns: a "*" only at the end,
// no empty parts, and no two that overlap ("us-east" covers "us-east/a").
func localities(locs []string) error {
	var prev [][]string
	for _, l := range locs {
		if n := strings.Count(l, "*"); n > 1 || (n == 1 && !strings.HasSuffix(l, "*")) {
			return fmt.Errorf("locality %q: wildcard '*' can appear once, at the end", l)
		}
		parts := strings.SplitN(l, "/", 3)
		for _, s := range parts {
			if s == "" {
				return fmt.Errorf("locality %q must not contain empty region/zone/subzone", l)
			}
		}
		if parts[len(parts)-1] == "*" {
			parts = parts[:len(parts)-1]
		}
		for _, q := range prev {
			if isPrefix(q, parts) || isPrefix(parts, q) {
				return fmt.Errorf("locality %q overlaps with a previous one", l)
			}
		}
		prev = append(prev, parts)
	}
	return nil
}

func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkClientTLS applies Istio's ClientTLSSettings rules.
func checkClientTLS(e *errs, p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	mode := t.GetMode()
	checkCACertCredential(e, p, t)
	if t.GetInsecureSkipVerify().GetValue() {
		if mode == networking.ClientTLSSettings_SIMPLE && (t.GetCaCertificates() != "" || t.GetCredentialName() != "" || len(t.GetSubjectAltNames()) > 0) {
			e.add(p, "cannot set caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true")
		}
		if mode == networking.ClientTLSSettings_MUTUAL && (t.GetCaCertificates() != "" || len(t.GetSubjectAltNames()) > 0) {
			e.add(p, "cannot set caCertificates or subjectAltNames when insecureSkipVerify is true")
		}
	}
	if (mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL) && t.GetCredentialName() != "" {
		if t.GetClientCertificate() != "" || t.GetCaCertificates() != "" || t.GetPrivateKey() != "" || t.GetCaCrl() != "" {
			e.add(p+".credentialName", "cannot set clientCertificate, privateKey, caCertificates or caCrl when credentialName is set")
		}
		return
	}
	if mode == networking.ClientTLSSettings_MUTUAL {
		if t.GetClientCertificate() == "" {
			e.add(p+".clientCertificate", "MUTUAL mode requires clientCertificate (or credentialName)")
		}
		if t.GetPrivateKey() == "" {
			e.add(p+".privateKey", "MUTUAL mode requires privateKey (or credentialName)")
		}
	}
}

func checkPortLevelSettings(e *errs, p string, pls []*networking.TrafficPolicy_PortTrafficPolicy) {
	seen := map[uint32]int{}
	for i, t := range pls {
		tp := idx(p, i)
		if t == nil {
			e.add(tp, "port traffic policy must not be null")
			continue
		}
		if t.GetPort() == nil {
			e.add(tp+".port", "port is required")
		} else {
			n := t.GetPort().GetNumber()
			checkPort(e, tp+".port.number", int64(n))
			if first, dup := seen[n]; dup {
				e.add(tp+".port.number", "duplicate port %d (first at %s)", n, idx(p, first))
			} else {
				seen[n] = i
			}
		}
		if t.GetOutlierDetection() == nil && t.GetConnectionPool() == nil && t.GetLoadBalancer() == nil && t.GetTls() == nil {
			e.add(tp, "port traffic policy must have at least one field")
			continue
		}
		checkOutlier(e, tp+".outlierDetection", t.GetOutlierDetection())
		checkConnectionPool(e, tp+".connectionPool", t.GetConnectionPool())
		checkLoadBalancer(e, tp+".loadBalancer", t.GetLoadBalancer(), t.GetOutlierDetection())
		checkClientTLS(e, tp+".tls", t.GetTls())
	}
}
