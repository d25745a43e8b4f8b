package ambient

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// meshOf is n ambient workloads in n/10 namespaces over n/10 nodes, one
// ServiceEntry and one AuthorizationPolicy per namespace (selecting one
// app), a mesh-wide STRICT PeerAuthentication; policy p's principal is
// variant.
func meshOf(n int, variant string) *mesh.Snapshot {
	cs := []*mesh.Config{{Meta: mesh.Meta{Kind: mesh.KindPeerAuthentication, Namespace: "istio-system", Name: "default"},
		Spec: &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: security.PeerAuthentication_MutualTLS_STRICT}}}}
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%(n/10))
		cs = append(cs, &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindWorkloadEntry, Namespace: ns, Name: fmt.Sprintf("w-%d", i)},
			Spec: &networking.WorkloadEntry{Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), ServiceAccount: "sa",
				Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%3), "istio.io/dataplane-mode": "ambient", "ward.io/node": fmt.Sprintf("node-%d", i%(n/10))}}})
	}
	for j := range n / 10 {
		ns := fmt.Sprintf("ns-%d", j)
		principal := "cluster.local/ns/other/sa/x"
		if j == 0 {
			principal = variant
		}
		cs = append(cs, &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: ns, Name: "svc"},
			Spec: &networking.ServiceEntry{Hosts: []string{"svc." + ns + ".svc.cluster.local"}, Addresses: []string{fmt.Sprintf("240.0.%d.%d", j>>8&255, j&255)},
				Ports:            []*networking.ServicePort{{Number: 80, Name: "tcp", Protocol: "TCP"}},
				WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "app-0"}}}},
			&mesh.Config{Meta: mesh.Meta{Kind: mesh.KindAuthorizationPolicy, Namespace: ns, Name: "deny"},
				Spec: &security.AuthorizationPolicy{Action: security.AuthorizationPolicy_DENY, Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "app-1"}},
					Rules: []*security.Rule{{From: []*security.Rule_From{{Source: &security.Source{Principals: []string{principal}}}}}}}})
	}
	return mesh.NewSnapshot(mesh.MeshConfig{}, cs)
}

// pushBytes is the encoded size of the responses that bring a node from
// `from` (nil: nothing) to `to`, and the number of resources in them.
func pushBytes(tb testing.TB, from, to *view) (bytes, resources int) {
	tb.Helper()
	for _, url := range mcp.NodeTypes {
		ts := &typeState{wildcard: true, names: map[string]bool{}, sent: map[string]string{}}
		if from != nil {
			for n, r := range from.res[url] {
				ts.sent[n] = r.Version
			}
		}
		if resp := diff(ts, to, url); resp != nil {
			bytes += proto.Size(resp)
			resources += len(resp.GetResources()) + len(resp.GetRemovedResources())
		}
	}
	return bytes, resources
}

func viewOf(tb testing.TB, snap *mesh.Snapshot, node string) *view {
	tb.Helper()
	enc, err := newEncoder(snap)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := enc.generate(node)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkNodeView times one more node's view of meshes of N workloads
// (objects already encoded) and reports the first push and the push after one policy changed.
func BenchmarkNodeView(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("workloads=%d", n), func(b *testing.B) {
			before, after := meshOf(n, "cluster.local/ns/a/sa/x"), meshOf(n, "cluster.local/ns/b/sa/x")
			v0, v1 := viewOf(b, before, "node-0"), viewOf(b, after, "node-0")
			initial, _ := pushBytes(b, nil, v0)
			incr, res := pushBytes(b, v0, v1)
			if res != 1 {
				b.Fatalf("one policy changed: %d resources pushed", res)
			}
			// The encoder is per snapshot and shared by every node, as in
			// the server: this is the cost of one more node's view.
			enc, err := newEncoder(before)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := enc.generate("node-1"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := enc.generate("node-0"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(initial), "first-push-B")
			b.ReportMetric(float64(incr), "policy-push-B")
		})
	}
}

// One changed policy is one resource to the nodes it applies to and
// nothing to the others.
func TestIncrementalPushScope(t *testing.T) {
	before, after := meshOf(100, "cluster.local/ns/a/sa/x"), meshOf(100, "cluster.local/ns/b/sa/x")
	if _, res := pushBytes(t, viewOf(t, before, "node-0"), viewOf(t, after, "node-0")); res != 1 {
		t.Errorf("node-0 (hosts the policy's workloads): %d resources, want 1", res)
	}
	if _, res := pushBytes(t, viewOf(t, before, "node-1"), viewOf(t, after, "node-1")); res != 0 {
		t.Errorf("node-1 (does not): %d resources, want 0", res)
	}
}
