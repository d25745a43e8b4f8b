package translate_test

import (
	"slices"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/translate"
)

// exclusionMesh has services in three namespaces and a Sidecar per case
// (namespace = case) in front of a client in that namespace.
const exclusionMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: prod-us1}
spec: {hosts: [a.prod-us1.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: prod-us2}
spec: {hosts: [b.prod-us2.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: foo, namespace: prod-apis}
spec: {hosts: [foo.example.com], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: prod-apis}
spec: {hosts: [other.example.com], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bar, namespace: prod-us1}
spec: {hosts: [bar.example.com], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}]}
`

func sidecar(ns string, hosts ...string) string {
	out := "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: " + ns + "}\nspec:\n  egress:\n  - hosts:\n"
	for _, h := range hosts {
		out += "    - \"" + h + "\"\n"
	}
	return out
}

// TestSidecarEgressExclusions pins the "~" exclusion form of Sidecar
// egress hosts (istio.io/api v1.32): excluded hosts are subtracted from
// what the same listener imports; a bare "~" is any namespace.
func TestSidecarEgressExclusions(t *testing.T) {
	cases := []struct {
		ns    string
		hosts []string
		want  []string
	}{
		{"c1", []string{"*/*"}, []string{"a.prod-us1.svc.cluster.local", "b.prod-us2.svc.cluster.local", "bar.example.com", "foo.example.com", "other.example.com"}},
		// The API reference example: everything but prod-us2, foo in
		// prod-apis and bar anywhere.
		{"c2", []string{"*/*", "~prod-us2/*", "~prod-apis/foo.example.com", "~/bar.example.com"}, []string{"a.prod-us1.svc.cluster.local", "other.example.com"}},
		{"c3", []string{"prod-apis/*", "~prod-apis/*.example.com"}, nil},
		{"c4", []string{"*/*.example.com", "~prod-us1/*"}, []string{"foo.example.com", "other.example.com"}},
		{"c5", []string{"~/*"}, nil},
		{"c6", []string{"*/*", "~*/foo.example.com"}, []string{"a.prod-us1.svc.cluster.local", "b.prod-us2.svc.cluster.local", "bar.example.com", "other.example.com"}},
		// An exclusion for another namespace leaves the host alone.
		{"c7", []string{"*/foo.example.com", "~prod-us1/foo.example.com"}, []string{"foo.example.com"}},
	}
	doc := exclusionMesh
	for _, tc := range cases {
		doc += sidecar(tc.ns, tc.hosts...)
	}
	cfgs, _, err := schema.DecodeAll([]byte(doc), mesh.Source{File: "exclusions.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		if fes := schema.Validate(c); len(fes) > 0 {
			t.Fatalf("%s: %v", c.Key(), fes)
		}
	}
	ix := translate.NewIndex(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs))
	for _, tc := range cases {
		t.Run(tc.ns, func(t *testing.T) {
			sc := ix.Scope(&mesh.Proxy{ID: "p", Namespace: tc.ns, Type: mesh.ProxySidecar})
			var got []string
			for _, s := range sc.Services {
				got = append(got, s.Hostname)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("hosts %v: sees %v, want %v", tc.hosts, got, tc.want)
			}
		})
	}
}
