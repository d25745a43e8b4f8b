package schema

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func init() { validators[mesh.KindSidecar] = validateSidecar }

func validateSidecar(c *mesh.Config, e *errs) {
	sc, ok := c.Spec.(*networking.Sidecar)
	if !ok {
		wrongType(e, c, "*v1alpha3.Sidecar")
		return
	}
	if sc.GetWorkloadSelector() != nil {
		checkSelectorLabels(e, "spec.workloadSelector.labels", sc.GetWorkloadSelector().GetLabels())
	}
	if len(sc.GetEgress()) == 0 && len(sc.GetIngress()) == 0 && sc.GetOutboundTrafficPolicy() == nil && sc.GetInboundConnectionPool() == nil {
		e.add("spec", "sidecar: empty configuration provided")
		return
	}
	ports := map[uint32]int{}
	for i, in := range sc.GetIngress() {
		checkIngressListener(e, idx("spec.ingress", i), in, ports)
	}
	checkConnectionPool(e, "spec.inboundConnectionPool", sc.GetInboundConnectionPool())
	checkEgressListeners(e, c.Namespace, sc.GetEgress())
	checkOutboundPolicy(e, "spec.outboundTrafficPolicy", sc.GetOutboundTrafficPolicy())
}

func checkIngressListener(e *errs, p string, in *networking.IstioIngressListener, ports map[uint32]int) {
	if in == nil {
		e.add(p, "ingress listener must not be null")
		return
	}
	if in.GetPort() == nil {
		e.add(p+".port", "port is required for ingress listeners")
		return
	}
	checkSidecarPort(e, p+".port", in.GetPort())
	if b := in.GetBind(); b != "" && !isIP(b) {
		e.add(p+".bind", "bind %q is not a valid IP address", b)
	}
	if first, dup := ports[in.GetPort().GetNumber()]; dup {
		e.add(p+".port.number", "ports on IP bound listeners must be unique: %d is also used by spec.ingress[%d]", in.GetPort().GetNumber(), first)
	} else {
		ports[in.GetPort().GetNumber()] = len(ports)
	}
	if d := in.GetDefaultEndpoint(); d != "" {
		checkErr(e, p+".defaultEndpoint", defaultEndpoint(d))
	}
	if t := in.GetTls(); t != nil {
		checkIngressTLS(e, p+".tls", t)
	}
	checkConnectionPool(e, p+".connectionPool", in.GetConnectionPool())
	if in.GetConnectionPool().GetHttp() != nil && !mesh.ParseProtocol(in.GetPort().GetProtocol()).IsHTTP() {
		e.warn(p+".connectionPool.http", "HTTP connection pool settings on non-HTTP port %d (%q): only TCP settings apply", in.GetPort().GetNumber(), in.GetPort().GetProtocol())
	}
}

func checkSidecarPort(e *errs, p string, port *networking.SidecarPort) {
	if port.GetTargetPort() > 0 { //nolint:staticcheck // rejected as Istio does
		e.add(p+".targetPort", "targetPort has no effect on sidecars")
	}
	if port.GetName() != "" {
		checkPortName(e, p+".name", port.GetName())
	}
	if !validProtocol(port.GetProtocol()) {
		e.add(p+".protocol", "unsupported protocol %q", port.GetProtocol())
	}
	checkPort(e, p+".number", int64(port.GetNumber()))
}

// defaultEndpoint checks an ingress listener's defaultEndpoint:
// 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, :<port> or
// unix://<path>.
func defaultEndpoint(d string) error {
	if rest, ok := strings.CutPrefix(d, unixPrefix); ok {
		return unixAddress(rest)
	}
	host, port, err := net.SplitHostPort(d)
	if err != nil {
		return fmt.Errorf("invalid defaultEndpoint %q: %v", d, err)
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		return fmt.Errorf("defaultEndpoint %q must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>", d)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("defaultEndpoint %q: port must be a number in 1..65535", d)
	}
	return nil
}

func checkIngressTLS(e *errs, p string, t *networking.ServerTLSSettings) {
	if len(t.GetSubjectAltNames()) > 0 {
		e.add(p+".subjectAltNames", "subjectAltNames is not supported in sidecar ingress tls")
	}
	if t.GetHttpsRedirect() {
		e.add(p+".httpsRedirect", "httpsRedirect is not supported in sidecar ingress tls")
	}
	if t.GetCredentialName() != "" {
		e.add(p+".credentialName", "credentialName is not supported in sidecar ingress tls")
	}
	if m := t.GetMode(); m == networking.ServerTLSSettings_ISTIO_MUTUAL || m == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		e.add(p+".mode", "mode %s is not allowed in sidecar ingress tls", m)
	}
	checkServerTLS(e, p, t)
}

func checkEgressListeners(e *errs, ns string, egress []*networking.IstioEgressListener) {
	ports := map[uint32]bool{}
	uds := map[string]bool{}
	catchAll := false
	for i, eg := range egress {
		p := idx("spec.egress", i)
		if eg == nil {
			e.add(p, "egress listener must not be null")
			continue
		}
		if eg.GetPort() == nil {
			switch {
			case catchAll:
				e.add(p+".port", "egress can have only one listener with an empty port")
				continue
			case i != len(egress)-1:
				e.add(p+".port", "the egress listener with an empty port must be the last listener")
			default:
				catchAll = true
			}
		} else {
			checkEgressPort(e, p, eg, ports, uds)
		}
		checkEgressHosts(e, p+".hosts", ns, eg.GetHosts())
	}
}

func checkEgressPort(e *errs, p string, eg *networking.IstioEgressListener, ports map[uint32]bool, uds map[string]bool) {
	port, bind := eg.GetPort(), eg.GetBind()
	if port.GetNumber() != 0 {
		checkSidecarPort(e, p+".port", port)
		if b := bind; b != "" && !isIP(b) {
			e.add(p+".bind", "bind %q is not a valid IP address", b)
		}
		if ports[port.GetNumber()] {
			e.add(p+".port.number", "ports on IP bound listeners must be unique: %d", port.GetNumber())
		}
		ports[port.GetNumber()] = true
		return
	}
	if port.GetTargetPort() > 0 { //nolint:staticcheck // rejected as Istio does
		e.add(p+".port.targetPort", "targetPort has no effect on sidecars")
	}
	if port.GetName() != "" {
		checkPortName(e, p+".port.name", port.GetName())
	}
	if !validProtocol(port.GetProtocol()) {
		e.add(p+".port.protocol", "unsupported protocol %q", port.GetProtocol())
	}
	rest, ok := strings.CutPrefix(bind, unixPrefix)
	if !ok {
		e.add(p+".bind", "a listener with port 0 must bind a unix domain socket (unix://...)")
	} else {
		checkErr(e, p+".bind", unixAddress(rest))
	}
	if m := eg.GetCaptureMode(); m != networking.CaptureMode_DEFAULT && m != networking.CaptureMode_NONE {
		e.add(p+".captureMode", "captureMode must be DEFAULT or NONE for unix domain socket listeners")
	}
	if uds[bind] {
		e.add(p+".bind", "unix domain socket %q used by more than one listener", bind)
	}
	uds[bind] = true
}

func checkEgressHosts(e *errs, p, ns string, hosts []string) {
	if len(hosts) == 0 {
		e.add(p, "egress listener must contain at least one host")
		return
	}
	byNS := map[string]map[string]bool{}
	included, excluded := false, false
	for i, h := range hosts {
		hp := idx(p, i)
		addAll(e, hp, NamespacedHost(h, false))
		hns, name, ok := strings.Cut(h, "/")
		if !ok {
			continue
		}
		if strings.HasPrefix(hns, "~") {
			// "~/*" is the documented way to import nothing; other
			// exclusions only make sense next to an inclusion.
			excluded = excluded || h != "~/*"
			continue
		}
		included = true
		if hns == "." {
			hns = ns
		}
		if byNS[hns] == nil {
			byNS[hns] = map[string]bool{}
		}
		if (name != "*" && (byNS[hns][name] || byNS[hns]["*"])) || (name == "*" && len(byNS[hns]) > 0) {
			e.warn(hp, "duplicated egress host %q", h)
		}
		byNS[hns][name] = true
	}
	if byNS["*"]["*"] && len(byNS) > 1 {
		e.warn(p, "*/* selects every host; no other hosts are needed")
	}
	if excluded && !included {
		e.warn(p, "the listener only excludes hosts (~namespace/host) and imports none, so it selects nothing")
	}
}

func checkOutboundPolicy(e *errs, p string, tp *networking.OutboundTrafficPolicy) {
	if tp == nil || tp.GetEgressProxy() == nil {
		return
	}
	if tp.GetMode() != networking.OutboundTrafficPolicy_ALLOW_ANY {
		e.add(p+".egressProxy", "egressProxy may only be set with mode ALLOW_ANY, not %s", tp.GetMode())
		return
	}
	ep := tp.GetEgressProxy()
	checkErr(e, p+".egressProxy.host", FQDN(ep.GetHost()))
	if ep.GetSubset() != "" && !isDNSLabel(ep.GetSubset()) {
		e.add(p+".egressProxy.subset", "invalid subset name %q", ep.GetSubset())
	}
	if ep.GetPort() == nil {
		e.add(p+".egressProxy.port", "egressProxy port is required")
		return
	}
	checkPort(e, p+".egressProxy.port.number", int64(ep.GetPort().GetNumber()))
}
