package authn

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

const rootNS = "istio-system"

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pa builds a PeerAuthentication created age minutes after t0.
func pa(ns, name string, age int, sel map[string]string, mode security.PeerAuthentication_MutualTLS_Mode, ports map[uint32]security.PeerAuthentication_MutualTLS_Mode) *mesh.Config {
	spec := &security.PeerAuthentication{}
	if mode >= 0 {
		spec.Mtls = &security.PeerAuthentication_MutualTLS{Mode: mode}
	}
	if sel != nil {
		spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
	}
	for p, m := range ports {
		if spec.PortLevelMtls == nil {
			spec.PortLevelMtls = map[uint32]*security.PeerAuthentication_MutualTLS{}
		}
		spec.PortLevelMtls[p] = &security.PeerAuthentication_MutualTLS{Mode: m}
	}
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindPeerAuthentication, Namespace: ns, Name: name,
		CreationTimestamp: t0.Add(time.Duration(age) * time.Minute)}, Spec: spec}
}

const (
	unset      = security.PeerAuthentication_MutualTLS_UNSET
	strict     = security.PeerAuthentication_MutualTLS_STRICT
	permissive = security.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = security.PeerAuthentication_MutualTLS_DISABLE
	noMTLS     = security.PeerAuthentication_MutualTLS_Mode(-1) // mtls block absent
)

var app = map[string]string{"app": "a"}

func TestEffectiveMode(t *testing.T) {
	cases := []struct {
		name     string
		policies []*mesh.Config
		port     uint32
		want     Mode
		ignored  []Reason
	}{
		{name: "no policy is permissive", want: ModePermissive},
		{name: "mesh strict", policies: []*mesh.Config{pa(rootNS, "m", 0, nil, strict, nil)}, want: ModeStrict},
		{name: "mesh unset stays permissive", policies: []*mesh.Config{pa(rootNS, "m", 0, nil, unset, nil)}, want: ModePermissive},
		{name: "mesh without mtls block stays permissive", policies: []*mesh.Config{pa(rootNS, "m", 0, nil, noMTLS, nil)}, want: ModePermissive},
		{name: "namespace overrides mesh", policies: []*mesh.Config{pa(rootNS, "m", 0, nil, strict, nil), pa("ns", "n", 0, nil, disable, nil)}, want: ModeDisable},
		{name: "namespace unset inherits mesh", policies: []*mesh.Config{pa(rootNS, "m", 0, nil, strict, nil), pa("ns", "n", 0, nil, unset, nil)}, want: ModeStrict},
		{name: "workload overrides namespace", policies: []*mesh.Config{pa("ns", "n", 0, nil, strict, nil), pa("ns", "w", 0, app, permissive, nil)}, want: ModePermissive},
		{name: "workload unset inherits namespace", policies: []*mesh.Config{pa("ns", "n", 0, nil, disable, nil), pa("ns", "w", 0, app, unset, nil)}, want: ModeDisable},
		{name: "workload unset inherits mesh through unset namespace", policies: []*mesh.Config{
			pa(rootNS, "m", 0, nil, strict, nil), pa("ns", "n", 0, nil, unset, nil), pa("ns", "w", 0, app, unset, nil)}, want: ModeStrict},
		{name: "non-matching selector does not apply", policies: []*mesh.Config{pa("ns", "w", 0, map[string]string{"app": "b"}, strict, nil)}, want: ModePermissive},
		{name: "empty selector is namespace level", policies: []*mesh.Config{pa("ns", "n", 0, map[string]string{}, strict, nil)}, want: ModeStrict},
		{name: "other namespace does not apply", policies: []*mesh.Config{pa("other", "n", 0, nil, strict, nil)}, want: ModePermissive},
		{name: "oldest namespace policy wins", policies: []*mesh.Config{pa("ns", "young", 5, nil, disable, nil), pa("ns", "old", 1, nil, strict, nil)},
			want: ModeStrict, ignored: []Reason{ReasonShadowed}},
		{name: "oldest mesh policy wins", policies: []*mesh.Config{pa(rootNS, "a-young", 5, nil, strict, nil), pa(rootNS, "z-old", 1, nil, disable, nil)},
			want: ModeDisable, ignored: []Reason{ReasonShadowed}},
		{name: "oldest workload policy wins", policies: []*mesh.Config{pa("ns", "a-young", 9, app, strict, nil), pa("ns", "b-old", 2, app, disable, nil)},
			want: ModeDisable, ignored: []Reason{ReasonShadowed}},
		{name: "same age: name breaks the tie", policies: []*mesh.Config{pa("ns", "b", 1, nil, disable, nil), pa("ns", "a", 1, nil, strict, nil)},
			want: ModeStrict, ignored: []Reason{ReasonShadowed}},
		{name: "root namespace selector is ignored", policies: []*mesh.Config{pa(rootNS, "sel", 0, app, strict, nil)},
			want: ModePermissive, ignored: []Reason{ReasonRootSelector}},
		{name: "root namespace selector not matching is not reported", policies: []*mesh.Config{pa(rootNS, "sel", 0, map[string]string{"app": "zzz"}, strict, nil)},
			want: ModePermissive},
		{name: "port-level override", port: 8080, policies: []*mesh.Config{
			pa("ns", "w", 0, app, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: disable})}, want: ModeDisable},
		{name: "port-level override does not touch other ports", port: 9090, policies: []*mesh.Config{
			pa("ns", "w", 0, app, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: disable})}, want: ModeStrict},
		{name: "port-level unset takes the workload mode", port: 8080, policies: []*mesh.Config{
			pa("ns", "n", 0, nil, disable, nil),
			pa("ns", "w", 0, app, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: unset})}, want: ModeStrict},
		{name: "port-level unset with workload unset inherits namespace", port: 8080, policies: []*mesh.Config{
			pa("ns", "n", 0, nil, disable, nil),
			pa("ns", "w", 0, app, unset, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: unset})}, want: ModeDisable},
		{name: "port-level of the shadowed workload policy is not used", port: 8080, policies: []*mesh.Config{
			pa("ns", "old", 0, app, strict, nil),
			pa("ns", "young", 3, app, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: disable})},
			want: ModeStrict, ignored: []Reason{ReasonShadowed}},
		{name: "undeclared port uses the workload mode", port: 31337, policies: []*mesh.Config{pa("ns", "w", 0, app, strict, nil)}, want: ModeStrict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := mesh.NewSnapshot(mesh.MeshConfig{}, tc.policies)
			got := PeerPolicyFor(snap, "ns", mesh.Labels{"app": "a", "version": "v1"})
			if m := got.ModeFor(tc.port); m != tc.want {
				t.Errorf("ModeFor(%d) = %s, want %s", tc.port, m, tc.want)
			}
			if m := EffectiveMode(snap, "ns", mesh.Labels{"app": "a", "version": "v1"}, tc.port); m != tc.want {
				t.Errorf("EffectiveMode = %s, want %s", m, tc.want)
			}
			var reasons []Reason
			for _, f := range got.Ignored {
				reasons = append(reasons, f.Reason)
			}
			if diff := cmp.Diff(tc.ignored, reasons); diff != "" {
				t.Errorf("ignored reasons (-want +got):\n%s\n%v", diff, got.Ignored)
			}
		})
	}
}

func TestComposePeerReportsWinners(t *testing.T) {
	m := pa(rootNS, "m", 0, nil, strict, nil)
	n := pa("ns", "n", 0, nil, unset, nil)
	w := pa("ns", "w", 0, app, disable, map[uint32]security.PeerAuthentication_MutualTLS_Mode{80: strict})
	got := ComposePeer(rootNS, "ns", mesh.Labels(app), []*mesh.Config{w, n, m})
	if got.Mesh != m || got.Namespace != n || got.Workload != w {
		t.Fatalf("winners = %v %v %v", got.Mesh, got.Namespace, got.Workload)
	}
	if diff := cmp.Diff([]uint32{80}, got.Ports()); diff != "" {
		t.Error(diff)
	}
}

func TestPeerFindings(t *testing.T) {
	we := func(ns, name string, labels map[string]string) *mesh.Config {
		return weConfig(ns, name, "10.0.0.1", labels)
	}
	snap := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{
		pa(rootNS, "mesh-old", 0, nil, strict, nil),
		pa(rootNS, "mesh-young", 1, nil, disable, nil),
		pa(rootNS, "root-sel", 0, app, strict, nil),
		pa("ns", "ns-ports", 0, nil, strict, map[uint32]security.PeerAuthentication_MutualTLS_Mode{80: disable}),
		pa("ns", "w-old", 0, app, strict, nil),
		pa("ns", "w-young", 5, app, disable, nil),
		pa("ns", "w-other", 6, map[string]string{"app": "nobody"}, disable, nil),
		we("ns", "a1", app),
	})
	got := map[mesh.Key][]Reason{}
	for _, f := range PeerFindings(snap) {
		got[f.Object] = append(got[f.Object], f.Reason)
	}
	key := func(ns, name string) mesh.Key {
		return mesh.Key{Kind: mesh.KindPeerAuthentication, Namespace: ns, Name: name}
	}
	want := map[mesh.Key][]Reason{
		key(rootNS, "mesh-young"): {ReasonShadowed},
		key(rootNS, "root-sel"):   {ReasonRootSelector},
		key("ns", "ns-ports"):     {ReasonPortLevelWithoutSelector},
		key("ns", "w-young"):      {ReasonShadowed},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}
