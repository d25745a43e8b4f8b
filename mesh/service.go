package mesh

import (
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// Port is a service port.
type Port struct {
	Name       string
	Number     uint32
	Protocol   Protocol
	TargetPort uint32 // 0 = same as Number
}

// Resolution says how a service's endpoints are found.
type Resolution = networking.ServiceEntry_Resolution

// Service is one host of a ServiceEntry (Istio creates one service per host).
type Service struct {
	Hostname        string
	Namespace       string
	Ports           []Port
	Addresses       []string
	Resolution      Resolution
	MeshExternal    bool
	ExportTo        []string // "." = own namespace, "*" or empty = all
	SubjectAltNames []string
	// WorkloadSelector is set when endpoints come from WorkloadEntries.
	WorkloadSelector Selector
	Source           Key
	Created          time.Time
}

// PortByNumber returns the port with that service port number.
func (s *Service) PortByNumber(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == n {
			return p, true
		}
	}
	return Port{}, false
}

// PortByName returns the port with that name.
func (s *Service) PortByName(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// VisibleTo reports whether the service is exported to namespace ns.
func (s *Service) VisibleTo(ns string) bool {
	if len(s.ExportTo) == 0 {
		return true
	}
	for _, e := range s.ExportTo {
		if e == "*" || e == ns || (e == "." && s.Namespace == ns) {
			return true
		}
	}
	return false
}

// TLSMode is how a workload speaks on the mesh.
type TLSMode string

// TLS modes, from the security.istio.io/tlsMode label.
const (
	TLSModeIstio    TLSMode = "istio"    // has a Ward identity; accepts mTLS
	TLSModeDisabled TLSMode = "disabled" // plaintext only
)

// LabelTLSMode marks a workload that has a mesh identity.
const LabelTLSMode = "security.istio.io/tlsMode"

// Workload is one instance running a mesh workload: a WorkloadEntry, an
// inline ServiceEntry endpoint, or (in Kubernetes mode) a pod.
type Workload struct {
	Name           string // empty for inline ServiceEntry endpoints
	Namespace      string
	Address        string
	Labels         Labels
	ServiceAccount string
	Locality       string
	Network        string
	Weight         uint32
	Ports          map[string]uint32 // port name → target port
	Source         Key
}

// Istio's ambient enrolment label and its ambient value. In Kubernetes
// the namespace's label applies to pods without their own (the kube
// source puts the effective value on the workload).
const (
	LabelDataplaneMode = "istio.io/dataplane-mode"
	DataplaneAmbient   = "ambient"
)

// Ambient reports whether the workload is enrolled in ambient mode: its
// node proxy gives it a mesh identity and mTLS without a sidecar.
func (w *Workload) Ambient() bool { return w.Labels[LabelDataplaneMode] == DataplaneAmbient }

// TLSMode returns the workload's TLS mode from its labels.
func (w *Workload) TLSMode() TLSMode {
	if w.Labels[LabelTLSMode] == string(TLSModeIstio) {
		return TLSModeIstio
	}
	return TLSModeDisabled
}

// Identity returns the workload's mesh identity in trust domain td.
func (w *Workload) Identity(td string) Identity {
	sa := w.ServiceAccount
	if sa == "" {
		sa = DefaultServiceAccount
	}
	return Identity{TrustDomain: td, Namespace: w.Namespace, ServiceAccount: sa}
}

// Endpoint is a workload serving one service port.
type Endpoint struct {
	Workload *Workload
	Port     uint32 // the port traffic is sent to on the workload
}

// targetPort resolves the workload port for a service port: the
// workload's named port, else the service targetPort, else the number.
func targetPort(w *Workload, p Port) uint32 {
	if n, ok := w.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

func workloadFromEntry(ns, name string, we *networking.WorkloadEntry, src Key) *Workload {
	return &Workload{
		Name: name, Namespace: ns, Address: we.GetAddress(), Labels: Labels(we.GetLabels()),
		ServiceAccount: we.GetServiceAccount(), Locality: we.GetLocality(), Network: we.GetNetwork(),
		Weight: we.GetWeight(), Ports: we.GetPorts(), Source: src,
	}
}

func servicesFromEntry(c *Config, se *networking.ServiceEntry) []*Service {
	ports := make([]Port, 0, len(se.GetPorts()))
	for _, p := range se.GetPorts() {
		ports = append(ports, Port{Name: p.GetName(), Number: p.GetNumber(), Protocol: ProtocolFromPort(p.GetProtocol(), p.GetName()), TargetPort: p.GetTargetPort()})
	}
	out := make([]*Service, 0, len(se.GetHosts()))
	for _, h := range se.GetHosts() {
		out = append(out, &Service{
			Hostname: strings.ToLower(h), Namespace: c.Namespace, Ports: ports, Addresses: se.GetAddresses(),
			Resolution: se.GetResolution(), MeshExternal: se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo: se.GetExportTo(), SubjectAltNames: se.GetSubjectAltNames(),
			WorkloadSelector: Selector(se.GetWorkloadSelector().GetLabels()), Source: c.Key(), Created: c.CreationTimestamp,
		})
	}
	return out
}
