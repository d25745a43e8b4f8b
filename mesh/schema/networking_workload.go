package schema

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func init() {
	validators[mesh.KindServiceEntry] = validateServiceEntry
	validators[mesh.KindWorkloadEntry] = validateWorkloadEntry
	validators[mesh.KindWorkloadGroup] = validateWorkloadGroup
}

func validateServiceEntry(c *mesh.Config, e *errs) {
	se, ok := c.Spec.(*networking.ServiceEntry)
	if !ok {
		wrongType(e, c, "*v1alpha3.ServiceEntry")
		return
	}
	if se.GetWorkloadSelector() != nil {
		checkSelectorLabels(e, "spec.workloadSelector.labels", se.GetWorkloadSelector().GetLabels())
		if se.Endpoints != nil {
			e.add("spec", "only one of workloadSelector or endpoints can be set")
		}
	}
	checkSEHosts(e, se)
	res := se.GetResolution()
	for i, a := range se.GetAddresses() {
		p := idx("spec.addresses", i)
		checkErr(e, p, IPOrCIDR(a))
		if strings.Contains(a, "/") && res != networking.ServiceEntry_NONE && res != networking.ServiceEntry_STATIC {
			e.add(p, "CIDR address %q is allowed only with resolution NONE or STATIC, not %s", a, res)
		}
	}
	ports := checkSEPorts(e, se)
	checkResolution(e, se, ports)
	if res != networking.ServiceEntry_NONE && len(se.GetHosts()) > 1 {
		for i, port := range se.GetPorts() {
			pr := mesh.ParseProtocol(port.GetProtocol())
			if port != nil && !pr.IsHTTP() && pr != mesh.ProtocolHTTPS && pr != mesh.ProtocolTLS {
				e.add(idx("spec.ports", i)+".protocol", "multiple hosts need HTTP or TLS ports to tell them apart (resolution %s), port %d is %q", res, port.GetNumber(), port.GetProtocol())
				break
			}
		}
	}
	checkExportTo(e, c.Namespace, se.GetExportTo(), true)
}

func checkSEHosts(e *errs, se *networking.ServiceEntry) {
	if len(se.GetHosts()) == 0 {
		e.add("spec.hosts", "service entry must have at least one host")
	}
	for i, h := range se.GetHosts() {
		p := idx("spec.hosts", i)
		if h == "*" {
			e.add(p, "invalid host %q: a service entry cannot match every host", h)
			continue
		}
		checkErr(e, p, WildcardHost(h))
		if err := partialWildcard(h); err != nil {
			e.warn(p, "%v", err)
		}
	}
}

// checkSEPorts validates the ports and returns the set of port names.
func checkSEPorts(e *errs, se *networking.ServiceEntry) map[string]bool {
	names := map[string]bool{}
	numbers := map[uint32]bool{}
	for i, port := range se.GetPorts() {
		p := idx("spec.ports", i)
		if port == nil {
			e.add(p, "port must not be null")
			continue
		}
		if names[port.GetName()] {
			e.add(p+".name", "port name %q already defined", port.GetName())
		}
		if numbers[port.GetNumber()] {
			e.add(p+".number", "port %d already defined", port.GetNumber())
		}
		names[port.GetName()], numbers[port.GetNumber()] = true, true
		if port.GetTargetPort() != 0 {
			checkPort(e, p+".targetPort", int64(port.GetTargetPort()))
		}
		checkPortName(e, p+".name", port.GetName())
		if !validProtocol(port.GetProtocol()) {
			e.add(p+".protocol", "unsupported protocol %q", port.GetProtocol())
		}
		checkPort(e, p+".number", int64(port.GetNumber()))
	}
	return names
}

func checkResolution(e *errs, se *networking.ServiceEntry, ports map[string]bool) {
	res := se.GetResolution()
	switch res {
	case networking.ServiceEntry_NONE:
		if len(se.GetEndpoints()) > 0 {
			e.add("spec.endpoints", "no endpoints should be provided for resolution NONE")
		}
		if se.GetWorkloadSelector() != nil {
			e.warn("spec.workloadSelector", "workloadSelector should not be set when resolution is NONE")
		}
	case networking.ServiceEntry_STATIC:
		for i, ep := range se.GetEndpoints() {
			p := idx("spec.endpoints", i)
			if ep == nil {
				e.add(p, "endpoint must not be null")
				continue
			}
			checkWorkloadEntry(e, p, ep, ports, false)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		checkDNSResolution(e, se, ports)
	default:
		e.add("spec.resolution", "unsupported resolution %d", res)
	}
}

func checkDNSResolution(e *errs, se *networking.ServiceEntry, ports map[string]bool) {
	res := se.GetResolution()
	if len(se.GetEndpoints()) == 0 {
		for i, h := range se.GetHosts() {
			if h != "*" && FQDN(h) != nil {
				e.add(idx("spec.hosts", i), "host %q must be a FQDN (no wildcard) when resolution is %s and there are no endpoints", h, res)
			}
		}
	}
	if res == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.GetEndpoints()) > 1 {
		e.add("spec.endpoints", "there must be 0 or 1 endpoint for resolution DNS_ROUND_ROBIN, got %d", len(se.GetEndpoints()))
	}
	for i, ep := range se.GetEndpoints() {
		p := idx("spec.endpoints", i)
		if ep == nil {
			e.add(p, "endpoint must not be null")
			continue
		}
		if a := ep.GetAddress(); !isIP(a) && FQDN(a) != nil {
			e.add(p+".address", "endpoint address %q is not a valid FQDN or IP address", a)
		}
		checkLabels(e, p+".labels", ep.GetLabels())
		checkEndpointPorts(e, p+".ports", ep.GetPorts(), ports)
	}
	if se.GetWorkloadSelector() != nil {
		e.warn("spec.workloadSelector", "workloadSelector should not be set when resolution is %s", res)
	}
}

func checkEndpointPorts(e *errs, p string, eps map[string]uint32, service map[string]bool) {
	for _, name := range sortedStrKeys(eps) {
		pp := key(p, name)
		if service != nil && !service[name] {
			e.add(pp, "endpoint port %q is not defined by the service entry", name)
		}
		checkPortName(e, pp, name)
		checkPort(e, pp, int64(eps[name]))
	}
}

func validateWorkloadEntry(c *mesh.Config, e *errs) {
	we, ok := c.Spec.(*networking.WorkloadEntry)
	if !ok {
		wrongType(e, c, "*v1alpha3.WorkloadEntry")
		return
	}
	checkWorkloadEntry(e, "spec", we, nil, true)
}

// checkWorkloadEntry applies Istio's WorkloadEntry rules, used for the
// kind itself and for ServiceEntry STATIC endpoints (where the address must
// be an IP or unix socket and ports must be the service's).
func checkWorkloadEntry(e *errs, p string, we *networking.WorkloadEntry, servicePorts map[string]bool, allowFQDN bool) {
	addr := we.GetAddress()
	if addr == "" {
		if we.GetNetwork() == "" {
			e.add(p+".address", "address is required (unless network is set)")
			return
		}
		e.warn(p+".address", "address is unset with network %q", we.GetNetwork())
	}
	unix := strings.HasPrefix(addr, unixPrefix)
	switch {
	case unix:
		checkErr(e, p+".address", unixAddress(strings.TrimPrefix(addr, unixPrefix)))
		if len(we.GetPorts()) > 0 {
			e.add(p+".ports", "unix endpoint %s must not include ports", addr)
		}
		if servicePorts != nil && len(servicePorts) != 1 {
			e.add(p+".address", "exactly 1 service port is required for unix endpoints")
		}
	case addr == "" || isIP(addr):
	case !allowFQDN:
		e.add(p+".address", "endpoint address %q is not a valid IP address (resolution STATIC)", addr)
	case FQDN(addr) != nil:
		e.add(p+".address", "endpoint address %q is not a valid FQDN or IP address", addr)
	}
	checkEndpointPorts(e, p+".ports", we.GetPorts(), servicePorts)
	checkLabels(e, p+".labels", we.GetLabels())
	if sa := we.GetServiceAccount(); sa != "" && (len(sa) > 253 || !dns1123Subdomain.MatchString(sa)) {
		e.add(p+".serviceAccount", "invalid service account %q (must be a DNS-1123 subdomain)", sa)
	}
}

func validateWorkloadGroup(c *mesh.Config, e *errs) {
	wg, ok := c.Spec.(*networking.WorkloadGroup)
	if !ok {
		wrongType(e, c, "*v1alpha3.WorkloadGroup")
		return
	}
	t := wg.GetTemplate()
	if t == nil {
		e.add("spec.template", "template is required")
	} else {
		// address is filled in when a workload registers, so it is not
		// required here; the rest follows WorkloadEntry.
		checkEndpointPorts(e, "spec.template.ports", t.GetPorts(), nil)
		checkLabels(e, "spec.template.labels", t.GetLabels())
		if t.GetAddress() != "" {
			e.warn("spec.template.address", "address should not be set in a template: it is filled in when a workload registers")
		}
		if len(t.GetLabels()) > 0 {
			e.warn("spec.template.labels", "labels should not be set in a template: use metadata.labels")
		}
	}
	checkLabels(e, "spec.metadata.labels", wg.GetMetadata().GetLabels())
	checkProbe(e, "spec.probe", wg.GetProbe())
}

func checkProbe(e *errs, p string, pr *networking.ReadinessProbe) {
	if pr == nil {
		return
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"periodSeconds", pr.GetPeriodSeconds()}, {"initialDelaySeconds", pr.GetInitialDelaySeconds()},
		{"timeoutSeconds", pr.GetTimeoutSeconds()}, {"successThreshold", pr.GetSuccessThreshold()},
		{"failureThreshold", pr.GetFailureThreshold()},
	} {
		if f.v < 0 {
			e.add(p+"."+f.name, "%s must be non-negative, got %d", f.name, f.v)
		}
	}
	switch m := pr.GetHealthCheckMethod().(type) {
	case *networking.ReadinessProbe_HttpGet:
		h := m.HttpGet
		checkPort(e, p+".httpGet.port", int64(h.GetPort()))
		if s := h.GetScheme(); s != "" && s != "HTTP" && s != "HTTPS" {
			e.add(p+".httpGet.scheme", "scheme must be HTTP or HTTPS, got %q", s)
		}
		for i, hd := range h.GetHttpHeaders() {
			checkErr(e, idx(p+".httpGet.httpHeaders", i)+".name", HeaderName(hd.GetName()))
		}
	case *networking.ReadinessProbe_TcpSocket:
		checkPort(e, p+".tcpSocket.port", int64(m.TcpSocket.GetPort()))
	case *networking.ReadinessProbe_Grpc:
		checkPort(e, p+".grpc.port", int64(m.Grpc.GetPort()))
	case *networking.ReadinessProbe_Exec:
		if len(m.Exec.GetCommand()) == 0 {
			e.add(p+".exec.command", "exec.command is required")
		}
	default:
		e.add(p, "probe needs one of httpGet, tcpSocket, grpc or exec")
	}
}
