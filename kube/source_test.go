package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/mesh"
	networkingv1 "istio.io/api/networking/v1alpha3"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const waitFor = 30 * time.Second

// startSource runs a Source until the test ends and returns its snapshots.
func startSource(t *testing.T, env *kubetest.Env, wardNS string) <-chan *mesh.Snapshot {
	snaps, _ := startSourceRef(t, env, wardNS)
	return snaps
}

func startSourceRef(t *testing.T, env *kubetest.Env, wardNS string) (<-chan *mesh.Snapshot, *kube.Source) {
	t.Helper()
	env.ApplyCRDs(t)
	snaps := make(chan *mesh.Snapshot, 100)
	src, err := kube.NewSource(kube.Config{
		Client: env.Clients.Kube, Dynamic: env.Clients.Dynamic, Namespace: wardNS, WriteStatus: true,
		Log:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnSnapshot: func(s *mesh.Snapshot) { snaps <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source run: %v", err)
		}
	})
	return snaps, src
}

// waitSnap reads snapshots until cond holds for one ("" = holds).
func waitSnap(t *testing.T, snaps <-chan *mesh.Snapshot, cond func(*mesh.Snapshot) string) *mesh.Snapshot {
	t.Helper()
	timeout := time.After(waitFor)
	msg := "no snapshot"
	for {
		select {
		case s := <-snaps:
			if msg = cond(s); msg == "" {
				return s
			}
		case <-timeout:
			t.Fatalf("no matching snapshot after %v: %s", waitFor, msg)
		}
	}
}

const policies = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: src1}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: src1}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: src1}
spec: {host: web.src1.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
`

func TestSourceFollowsIstioObjects(t *testing.T) {
	env := kubetest.Require(t)
	env.Namespace(t, "src1", nil)
	snaps := startSource(t, env, "ward-src1")
	env.Kubectl(t, policies, "apply", "-f", "-")
	ap := mesh.Key{Kind: mesh.KindAuthorizationPolicy, Namespace: "src1", Name: "allow-get"}
	pa := mesh.Key{Kind: mesh.KindPeerAuthentication, Namespace: "src1", Name: "strict"}
	dr := mesh.Key{Kind: mesh.KindDestinationRule, Namespace: "src1", Name: "web"}
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		for _, k := range []mesh.Key{ap, pa, dr} {
			if _, ok := s.Get(k); !ok {
				return "missing " + k.String()
			}
		}
		c, _ := s.Get(ap)
		if got := fmt.Sprint(c.Spec); !strings.Contains(got, "GET") {
			return "policy spec lacks GET: " + got
		}
		return ""
	})

	env.Kubectl(t, "", "-n", "src1", "delete", "authorizationpolicy", "allow-get")
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		if _, ok := s.Get(ap); ok {
			return ap.String() + " still present"
		}
		if _, ok := s.Get(pa); !ok {
			return pa.String() + " disappeared"
		}
		return ""
	})
}

// Without the validating webhook (this package does not run it), an
// invalid object reaches the API server: the source keeps the last good
// version, and says why on the object's status.
func TestSourceRejectsInvalidKeepsLastGoodAndWritesStatus(t *testing.T) {
	env := kubetest.Require(t)
	env.Namespace(t, "src2", nil)
	snaps, src := startSourceRef(t, env, "ward-src2")
	good := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: src2}
spec:
  rules: [{to: [{operation: {methods: [GET]}}]}]
`
	env.Kubectl(t, good, "apply", "-f", "-")
	key := mesh.Key{Kind: mesh.KindAuthorizationPolicy, Namespace: "src2", Name: "p"}
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		if _, ok := s.Get(key); !ok {
			return "missing " + key.String()
		}
		return ""
	})
	env.Kubectl(t, strings.Replace(good, "[GET]", `[""]`, 1), "apply", "-f", "-")
	gvr := kube.GVR(mesh.KindAuthorizationPolicy)
	var msg string
	kubetest.Eventually(t, waitFor, func() string {
		u, err := env.Clients.Dynamic.Resource(gvr).Namespace("src2").Get(context.Background(), "p", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m := c.(map[string]any)
			if m["type"] == kube.ConditionAccepted && m["status"] == "False" {
				msg = fmt.Sprint(m["message"])
				return ""
			}
		}
		return fmt.Sprintf("no Accepted=False condition: %v", u.Object["status"])
	})
	want := `AuthorizationPolicy src2/p: spec.rules[0].to[0].operation.methods[0]: empty value not allowed`
	if !strings.Contains(msg, want) {
		t.Errorf("status message = %q, want it to contain %q", msg, want)
	}
	c, ok := src.Snapshot().Get(key)
	if !ok || !strings.Contains(fmt.Sprint(c.Spec), "GET") {
		t.Errorf("last good version not kept: %v", c)
	}

	// Fixing it flips the condition back.
	env.Kubectl(t, strings.Replace(good, "[GET]", "[POST]", 1), "apply", "-f", "-")
	kubetest.Eventually(t, waitFor, func() string {
		u, err := env.Clients.Dynamic.Resource(gvr).Namespace("src2").Get(context.Background(), "p", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		if len(conds) == 1 && conds[0].(map[string]any)["status"] == "True" {
			return ""
		}
		return fmt.Sprintf("conditions %v", conds)
	})
}

func TestSourceDuplicateNamespaceWidePeerAuthentication(t *testing.T) {
	env := kubetest.Require(t)
	env.Namespace(t, "src3", nil)
	startSource(t, env, "ward-src3")
	env.Kubectl(t, `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: first, namespace: src3}
spec: {mtls: {mode: STRICT}}
`, "apply", "-f", "-")
	env.Kubectl(t, `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: second, namespace: src3}
spec: {mtls: {mode: PERMISSIVE}}
`, "apply", "-f", "-")
	kubetest.Eventually(t, waitFor, func() string {
		out, _ := env.KubectlErr("", "-n", "src3", "get", "peerauthentication", "second", "-o", "jsonpath={.status.conditions[0].reason}:{.status.conditions[0].message}")
		if strings.HasPrefix(out, "Conflict:") && strings.Contains(out, "first") {
			return ""
		}
		return "status of second: " + out
	})
	out, _ := env.KubectlErr("", "-n", "src3", "get", "peerauthentication", "first", "-o", "jsonpath={.status}")
	if out != "" {
		t.Errorf("the older PeerAuthentication got a status: %s", out)
	}
}

func TestSourceRegistryFromServicesPodsAndEndpointSlices(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	env.Namespace(t, "src4", nil)
	env.ServiceAccount(t, "src4", "web-sa")
	snaps := startSource(t, env, "ward-src4")
	k := env.Clients.Kube
	_, err := k.CoreV1().Services("src4").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http-web")},
			{Name: "grpc-api", Port: 9000, TargetPort: intstr.FromInt32(9001)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := k.CoreV1().Pods("src4").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web", mesh.LabelTLSMode: "istio"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web-sa", Containers: []corev1.Container{{
			Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http-web", ContainerPort: 8080}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet: give the pod an IP as the kubelet would.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.7", PodIPs: []corev1.PodIP{{IP: "10.1.0.7"}}}
	if _, err := k.CoreV1().Pods("src4").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = k.CoreV1().Services("src4").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp-db", Port: 5432}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.DiscoveryV1().EndpointSlices("src4").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.2.0.1"}}, {Addresses: []string{"10.2.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("tcp-db"), Port: ptr.To[int32](5432)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		web := s.ServicesByHost("web.src4.svc.cluster.local")
		db := s.ServicesByHost("db.src4.svc.cluster.local")
		if len(web) != 1 || len(db) != 1 {
			return fmt.Sprintf("services web=%d db=%d", len(web), len(db))
		}
		http, _ := web[0].PortByName("http")
		grpc, _ := web[0].PortByName("grpc-api")
		eps := s.Endpoints(web[0], http)
		if len(eps) != 1 || eps[0].Workload.Address != "10.1.0.7" || eps[0].Port != 8080 {
			return fmt.Sprintf("web http endpoints %+v", eps)
		}
		if grpc.Protocol != mesh.ProtocolGRPC {
			return fmt.Sprintf("grpc-api protocol %q", grpc.Protocol)
		}
		if eps := s.Endpoints(web[0], grpc); len(eps) != 1 || eps[0].Port != 9001 {
			return fmt.Sprintf("web grpc endpoints %+v", eps)
		}
		w := eps[0].Workload
		if id := w.Identity(s.Mesh().TrustDomain).String(); id != "spiffe://cluster.local/ns/src4/sa/web-sa" || w.TLSMode() != mesh.TLSModeIstio {
			return fmt.Sprintf("workload identity %s tls %s", id, w.TLSMode())
		}
		dbPort, _ := db[0].PortByName("tcp-db")
		dbEps := s.Endpoints(db[0], dbPort)
		if len(dbEps) != 1 || dbEps[0].Workload.Address != "10.2.0.1" || dbEps[0].Port != 5432 {
			return fmt.Sprintf("db endpoints %+v (the not-ready one must be left out)", dbEps)
		}
		return ""
	})

	if err := k.CoreV1().Pods("src4").Delete(ctx, "web-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		web := s.ServicesByHost("web.src4.svc.cluster.local")
		if len(web) == 1 && len(s.Members(web[0])) == 0 {
			return ""
		}
		return "pod still a member"
	})
}

func TestSourceMeshConfigFromConfigMap(t *testing.T) {
	env := kubetest.Require(t)
	env.Namespace(t, "ward-src5", nil)
	snaps := startSource(t, env, "ward-src5")
	_, err := env.Clients.Kube.CoreV1().ConfigMaps("ward-src5").Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: kube.DefaultMeshConfigMap},
		Data:       map[string]string{kube.MeshConfigKey: "trustDomain: example.org\noutboundTrafficPolicy: REGISTRY_ONLY\n"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitSnap(t, snaps, func(s *mesh.Snapshot) string {
		if m := s.Mesh(); m.TrustDomain != "example.org" || m.OutboundTrafficPolicy != mesh.OutboundRegistryOnly {
			return fmt.Sprintf("mesh config %+v", m)
		}
		return ""
	})
}

func TestParseMeshConfigRejectsUnknownFields(t *testing.T) {
	_, err := kube.ParseMeshConfig(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "ward-mesh", Namespace: "ward-system"},
		Data:       map[string]string{kube.MeshConfigKey: "trustDomian: example.org\n"},
	})
	if err == nil || !strings.Contains(err.Error(), "trustDomian") {
		t.Fatalf("err = %v, want an unknown-field error naming trustDomian", err)
	}
}

func TestMergeKeepsBothSourcesLaterWins(t *testing.T) {
	cfg := func(name, ns string, rv string) *mesh.Config {
		return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: ns, Name: name, ResourceVersion: rv}, Spec: &networkingv1.ServiceEntry{Hosts: []string{name + ".example"}}}
	}
	a := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{cfg("a", "x", "1"), cfg("dup", "x", "file")})
	b := mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{cfg("b", "y", "1"), cfg("dup", "x", "kube")})
	m := mesh.Merge(mesh.MeshConfig{TrustDomain: "example.org"}, a, nil, b)
	if m.Len() != 3 || m.Mesh().TrustDomain != "example.org" {
		t.Fatalf("merged %d objects under %q", m.Len(), m.Mesh().TrustDomain)
	}
	if c, _ := m.Get(mesh.Key{Kind: mesh.KindServiceEntry, Namespace: "x", Name: "dup"}); c.ResourceVersion != "kube" {
		t.Errorf("duplicate resolved to %q, want the later snapshot's", c.ResourceVersion)
	}
	if len(m.ServicesByHost("b.example")) != 1 {
		t.Error("registry not rebuilt from the merged configs")
	}
}

// Findings of Config.Analyze land on the object's status and are cleared
// when Analyze stops reporting them (Refresh re-runs it).
func TestSourceWritesAnalyzeFindingsToStatus(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	env.Namespace(t, "src6", nil)
	var mu sync.Mutex
	failing := true
	src, err := kube.NewSource(kube.Config{
		Client: env.Clients.Kube, Dynamic: env.Clients.Dynamic, Namespace: "ward-src6", WriteStatus: true,
		Analyze: func(s *mesh.Snapshot) []kube.Problem {
			mu.Lock()
			defer mu.Unlock()
			var out []kube.Problem
			for _, c := range s.InNamespace(mesh.KindRequestAuthentication, "src6") {
				if failing {
					out = append(out, kube.Problem{Key: c.Key(), Reason: "JWKSUnavailable", Message: "jwks fetch failed"})
				}
			}
			return out
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	env.Kubectl(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: src6}
spec:
  jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]
`, "apply", "-f", "-")
	cond := func(want string) func() string {
		return func() string {
			out, _ := env.KubectlErr("", "-n", "src6", "get", "requestauthentication", "jwt", "-o", "jsonpath={.status.conditions[0].status}/{.status.conditions[0].reason}")
			if out != want {
				return "condition " + out + ", want " + want
			}
			return ""
		}
	}
	kubetest.Eventually(t, waitFor, cond("False/JWKSUnavailable"))
	mu.Lock()
	failing = false
	mu.Unlock()
	src.Refresh()
	kubetest.Eventually(t, waitFor, cond("True/Valid"))
}
