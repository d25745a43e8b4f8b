package authn

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
)

func weConfig(ns, name, addr string, labels map[string]string) *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindWorkloadEntry, Namespace: ns, Name: name, CreationTimestamp: t0},
		Spec: &networking.WorkloadEntry{Address: addr, Labels: labels, ServiceAccount: name}}
}

func serviceEntry(host string, sel map[string]string) *networking.ServiceEntry {
	return &networking.ServiceEntry{Hosts: []string{host}, Resolution: networking.ServiceEntry_STATIC, Location: networking.ServiceEntry_MESH_INTERNAL,
		Ports: []*networking.ServicePort{
			{Name: "http", Number: 80, Protocol: "HTTP", TargetPort: 8080},
			{Name: "db", Number: 5432, Protocol: "TCP"},
		},
		WorkloadSelector: &networking.WorkloadSelector{Labels: sel}}
}
