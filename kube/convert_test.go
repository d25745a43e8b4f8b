package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
)

func TestServiceEntryFromService(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	meta := func(name string, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "shop", CreationTimestamp: created, Annotations: ann}
	}
	for name, tc := range map[string]struct {
		svc  corev1.Service
		want *networking.ServiceEntry
	}{
		"cluster IP, selector, protocols": {
			corev1.Service{ObjectMeta: meta("web", map[string]string{annotationExportTo: ". , istio-system"}), Spec: corev1.ServiceSpec{
				ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{
					{Name: "http-web", Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "api", Port: 9000, AppProtocol: ptr.To("grpc"), TargetPort: intstr.FromString("api")},
					{Port: 53, Protocol: corev1.ProtocolUDP},
				},
			}},
			&networking.ServiceEntry{
				Hosts: []string{"web.shop.svc.cluster.local"}, Addresses: []string{"10.96.0.10"},
				Location: networking.ServiceEntry_MESH_INTERNAL, Resolution: networking.ServiceEntry_STATIC,
				ExportTo:         []string{".", "istio-system"},
				WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "web"}},
				Ports: []*networking.ServicePort{
					{Number: 80, Name: "http-web", Protocol: "HTTP", TargetPort: 8080},
					{Number: 9000, Name: "api", Protocol: "GRPC"},
					{Number: 53, Name: "port-53", Protocol: "UDP"},
				},
			},
		},
		"headless": {
			corev1.Service{ObjectMeta: meta("db", nil), Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}}},
			&networking.ServiceEntry{
				Hosts: []string{"db.shop.svc.cluster.local"}, Location: networking.ServiceEntry_MESH_INTERNAL,
				Resolution: networking.ServiceEntry_STATIC, WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "db"}},
			},
		},
		"external name": {
			corev1.Service{ObjectMeta: meta("ext", nil), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "api.example.com"}},
			&networking.ServiceEntry{
				Hosts: []string{"ext.shop.svc.cluster.local"}, Location: networking.ServiceEntry_MESH_EXTERNAL,
				Resolution: networking.ServiceEntry_DNS, Endpoints: []*networking.WorkloadEntry{{Address: "api.example.com"}},
			},
		},
	} {
		c := serviceEntry(&tc.svc, nil, "cluster.local")
		if diff := cmp.Diff(tc.want, c.Spec, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		if c.Key() != (mesh.Key{Kind: mesh.KindServiceEntry, Namespace: "shop", Name: "svc." + tc.svc.Name}) || !c.CreationTimestamp.Equal(created.Time) {
			t.Errorf("%s: key %v created %v", name, c.Key(), c.CreationTimestamp)
		}
	}
}

func TestWorkloadEntryFromPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "api", ContainerPort: 9001}}}}},
		Status:     corev1.PodStatus{PodIP: "10.1.0.7", Phase: corev1.PodRunning},
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000, TargetPort: intstr.FromString("api")}},
	}}
	c := workloadEntry(pod, namedTargetPorts(pod, []*corev1.Service{svc}), "")
	want := &networking.WorkloadEntry{Address: "10.1.0.7", Labels: map[string]string{"app": "web"}, ServiceAccount: "default", Ports: map[string]uint32{"grpc": 9001}}
	if diff := cmp.Diff(want, c.Spec, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for name, mod := range map[string]func(*corev1.Pod){
		"no IP":       func(p *corev1.Pod) { p.Status.PodIP = "" },
		"terminating": func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} },
		"succeeded":   func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
	} {
		p := pod.DeepCopy()
		mod(p)
		if workloadEntry(p, nil, "") != nil {
			t.Errorf("%s: pod became a workload", name)
		}
	}
}

// A namespace labelled istio.io/dataplane-mode=ambient enrols its pods
// (the workload carries the label); a pod's own label wins (none opts out).
func TestWorkloadEntryNamespaceAmbient(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{PodIP: "10.1.0.7", Phase: corev1.PodRunning}}
	got := workloadEntry(pod, nil, "ambient").Spec.(*networking.WorkloadEntry).GetLabels()
	if got[LabelDataplaneMode] != "ambient" || got["app"] != "web" {
		t.Errorf("labels = %v, want the namespace's ambient mode added", got)
	}
	if pod.Labels[LabelDataplaneMode] != "" {
		t.Error("the pod's own labels were modified")
	}
	pod.Labels[LabelDataplaneMode] = "none"
	if got := workloadEntry(pod, nil, "ambient").Spec.(*networking.WorkloadEntry).GetLabels()[LabelDataplaneMode]; got != "none" {
		t.Errorf("pod opting out: mode %q, want none", got)
	}
}

// The node proxy finds a pod's WorkloadEntry from the namespace and name
// the CNI plugin reports (node.PodWorkload); the two must agree.
func TestPodWorkloadNameIsTheNodeProxys(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "shop"}, Status: corev1.PodStatus{PodIP: "10.1.0.9", Phase: corev1.PodRunning}}
	c := workloadEntry(pod, nil, "")
	if c == nil {
		t.Fatal("pod became no workload")
	}
	if got, want := c.Key(), node.PodWorkload("shop", "db-0"); got != want {
		t.Errorf("kube names pod shop/db-0 %v, the node proxy looks for %v", got, want)
	}
}
