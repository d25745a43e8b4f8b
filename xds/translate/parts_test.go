package translate_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// The server generates each side separately and merges them; the merge
// must equal the one-shot output.
func TestSidesMergeToWhole(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.dir+"/"+tc.name, func(t *testing.T) {
			ix := translate.NewIndex(load(t, tc.dir))
			p := tc.proxy
			sc := ix.Scope(&p)
			whole := translate.Generate(ix, sc, translate.Hooks{})
			parts := translate.Merge(translate.Merge(
				translate.GenerateOutboundConfig(ix, sc, translate.Hooks{}),
				translate.GenerateEndpoints(ix, sc, translate.Hooks{})),
				translate.GenerateInbound(ix, sc, translate.Hooks{}))
			if diff := cmp.Diff(whole, parts, protocmp.Transform()); diff != "" {
				t.Errorf("sides differ from the whole (-whole +sides):\n%s", diff)
			}
		})
	}
}

// An endpoint-only change keeps the config fingerprint (no cluster,
// listener or route regeneration) and changes the full one.
func TestEndpointChangeKeepsConfigFingerprint(t *testing.T) {
	snap := load(t, "grpc")
	p := goldenCases[1].proxy
	var cfgs []*mesh.Config
	for _, k := range snap.Keys() {
		c, _ := snap.Get(k)
		if k.Kind == mesh.KindWorkloadEntry && k.Name == "echo-v1" {
			moved := *c
			we := moved.Spec.(*networking.WorkloadEntry)
			moved.Spec = &networking.WorkloadEntry{Address: "127.0.0.9", Ports: we.GetPorts(), Labels: we.GetLabels(), ServiceAccount: we.GetServiceAccount()}
			c = &moved
		}
		cfgs = append(cfgs, c)
	}
	a := translate.NewIndex(snap)
	b := translate.NewIndex(mesh.NewSnapshot(snap.Mesh(), cfgs))
	sa, sb := a.Scope(&p), b.Scope(&p)
	if a.OutboundConfigFingerprint(sa) != b.OutboundConfigFingerprint(sb) {
		t.Error("moving an endpoint changed the config fingerprint")
	}
	if a.EndpointsFingerprint(sa) == b.EndpointsFingerprint(sb) {
		t.Error("moving an endpoint did not change the endpoints fingerprint")
	}
	// A proxy of another namespace that sees the same services through the
	// same rules shares the endpoint side.
	q := p
	q.Namespace = "elsewhere"
	if a.EndpointsFingerprint(a.Scope(&q)) != a.EndpointsFingerprint(sa) {
		t.Error("same view from another namespace: endpoints fingerprint differs")
	}
}
