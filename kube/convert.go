package kube

import (
	"fmt"
	"sort"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// annotationExportTo is Istio's per-Service exportTo annotation.
const annotationExportTo = "networking.istio.io/exportTo"

// DecodeObject decodes and validates one Istio object given as its JSON
// map (an unstructured object or an admission request's object) with
// exactly the file source's rules: package schema's strict Decode, then
// Validate. defaultNS fills an empty metadata.namespace. A nil Config with
// a nil error means the object is not an Istio kind Ward reads. The error,
// when not nil, is a *schema.ObjectError listing every violation.
func DecodeObject(obj map[string]any, defaultNS string, src mesh.Source) (*mesh.Config, error) {
	if md, ok := obj["metadata"].(map[string]any); ok && defaultNS != "" {
		if ns, _ := md["namespace"].(string); ns == "" {
			md["namespace"] = defaultNS
		}
	}
	doc := &schema.Document{Value: obj, Lines: map[string]int{}}
	d, err := schema.Decode(doc, src)
	if err != nil {
		return nil, err
	}
	if d.Config == nil {
		return nil, nil
	}
	if err := schema.ValidateObject(d.Config, nil); err != nil {
		return nil, err
	}
	return d.Config, nil
}

// decodeUnstructured decodes an informer's object; the map is copied
// because Decode may normalise it in place and informer caches are shared.
func decodeUnstructured(u *unstructured.Unstructured) (*mesh.Config, error) {
	obj := u.DeepCopy().Object
	src := mesh.Source{File: fmt.Sprintf("k8s:%s/%s", u.GetKind(), u.GetNamespace()+"/"+u.GetName())}
	return DecodeObject(obj, "", src)
}

// serviceEntry turns a Kubernetes Service into the ServiceEntry Istio's
// registry would derive from it: host <name>.<ns>.svc.<domain>, the
// cluster IP, ports with protocols from appProtocol or the port name, and
// the Service's selector as the workload selector (pods become
// WorkloadEntries). Services without a selector get inline endpoints from
// their EndpointSlices.
func serviceEntry(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, domain string) *mesh.Config {
	se := &networking.ServiceEntry{
		Hosts:      []string{fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, domain)},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		se.Addresses = []string{ip}
	}
	for _, p := range svc.Spec.Ports {
		se.Ports = append(se.Ports, servicePort(p))
	}
	if e := svc.Annotations[annotationExportTo]; e != "" {
		for _, v := range strings.Split(e, ",") {
			se.ExportTo = append(se.ExportTo, strings.TrimSpace(v))
		}
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		se.Resolution = networking.ServiceEntry_DNS
		se.Location = networking.ServiceEntry_MESH_EXTERNAL
		se.Endpoints = []*networking.WorkloadEntry{{Address: svc.Spec.ExternalName}}
	case len(svc.Spec.Selector) > 0:
		se.WorkloadSelector = &networking.WorkloadSelector{Labels: svc.Spec.Selector}
	default:
		se.Endpoints = sliceEndpoints(slices)
	}
	return &mesh.Config{Meta: syntheticMeta(mesh.KindServiceEntry, "Service", svc.ObjectMeta.Namespace, svc.Name, svc.CreationTimestamp.Time, svc.ResourceVersion), Spec: se}
}

func servicePort(p corev1.ServicePort) *networking.ServicePort {
	proto := ""
	if p.AppProtocol != nil {
		proto = *p.AppProtocol
	}
	pr := mesh.ProtocolFromPort(proto, p.Name)
	if pr == mesh.ProtocolUnknown && p.Protocol == corev1.ProtocolUDP {
		pr = mesh.ProtocolUDP
	}
	name := p.Name
	if name == "" {
		name = fmt.Sprintf("port-%d", p.Port)
	}
	sp := &networking.ServicePort{Number: uint32(p.Port), Name: name, Protocol: string(pr)}
	if p.TargetPort.IntValue() > 0 {
		sp.TargetPort = uint32(p.TargetPort.IntValue())
	}
	return sp
}

// sliceEndpoints lists the ready addresses of a selector-less Service's
// EndpointSlices as inline endpoints, ports keyed by port name.
func sliceEndpoints(slices []*discoveryv1.EndpointSlice) []*networking.WorkloadEntry {
	var out []*networking.WorkloadEntry
	for _, s := range slices {
		ports := map[string]uint32{}
		for _, p := range s.Ports {
			if p.Port != nil && p.Name != nil {
				ports[*p.Name] = uint32(*p.Port)
			}
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				out = append(out, &networking.WorkloadEntry{Address: a, Ports: ports})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// workloadEntry turns a running Pod into a WorkloadEntry: its IP, labels
// and service account (the pod's identity); named service target ports
// resolve against the pod's container ports. Pods without an IP or being
// deleted give nil. nsMode is the namespace's istio.io/dataplane-mode
// label: as in Istio, a namespace labelled ambient enrols its pods unless
// a pod's own label says otherwise (e.g. none), so the workload carries
// its effective mode, and the ward.io/node label is set from spec.nodeName.
func workloadEntry(pod *corev1.Pod, named map[string]string, nsMode string) *mesh.Config {
	if pod.Status.PodIP == "" || pod.DeletionTimestamp != nil ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = mesh.DefaultServiceAccount
	}
	labels := make(map[string]string, len(pod.Labels)+2)
	for k, v := range pod.Labels {
		labels[k] = v
	}
	if _, own := labels[LabelDataplaneMode]; !own && nsMode != "" {
		labels[LabelDataplaneMode] = nsMode
	}
	// The node label is the scheduler's word, never the pod author's: the
	// node proxy of spec.nodeName enrols the workload (kube.Placement lets
	// the CA issue it there by the same field).
	delete(labels, ca.LabelNode)
	if pod.Spec.NodeName != "" {
		labels[ca.LabelNode] = pod.Spec.NodeName
	}
	we := &networking.WorkloadEntry{Address: pod.Status.PodIP, Labels: labels, ServiceAccount: sa}
	for svcPort, target := range named {
		if n := containerPort(pod, target); n > 0 {
			if we.Ports == nil {
				we.Ports = map[string]uint32{}
			}
			we.Ports[svcPort] = n
		}
	}
	return &mesh.Config{Meta: syntheticMeta(mesh.KindWorkloadEntry, "Pod", pod.Namespace, pod.Name, pod.CreationTimestamp.Time, pod.ResourceVersion), Spec: we}
}

// LabelDataplaneMode is Istio's ambient enrolment label, on namespaces
// and pods.
const LabelDataplaneMode = "istio.io/dataplane-mode"

func containerPort(pod *corev1.Pod, name string) uint32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return uint32(p.ContainerPort)
			}
		}
	}
	return 0
}

// namedTargetPorts maps service port name → named target port for every
// Service in services whose selector matches the pod.
func namedTargetPorts(pod *corev1.Pod, services []*corev1.Service) map[string]string {
	var out map[string]string
	for _, s := range services {
		if len(s.Spec.Selector) == 0 || !mesh.Selector(s.Spec.Selector).Matches(pod.Labels) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" {
				if out == nil {
					out = map[string]string{}
				}
				out[servicePort(p).Name] = p.TargetPort.StrVal
			}
		}
	}
	return out
}

// syntheticMeta names a derived object after its Kubernetes origin:
// "svc.<name>" and "pod.<name>", so a user's ServiceEntry or WorkloadEntry
// named like the Service or Pod does not collide with it; Source says
// where it came from.
func syntheticMeta(k mesh.Kind, origin, ns, name string, created time.Time, rv string) mesh.Meta {
	short := map[string]string{"Service": "svc", "Pod": "pod"}[origin]
	return mesh.Meta{
		Kind: k, Namespace: ns, Name: short + "." + name, CreationTimestamp: created, ResourceVersion: rv,
		Source: mesh.Source{File: fmt.Sprintf("k8s:%s/%s/%s", origin, ns, name)},
	}
}
