package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/mesh"
)

// A proxyless grpc-go client reaches pods behind a Kubernetes Service
// through Ward's xDS fed by the Kubernetes source; Istio objects applied
// with kubectl steer it, and deleting them undoes that.
func TestKubeServicesAndIstioObjectsDriveXDS(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	ns := env.UniqueNamespace(t, "e2e-kube", nil)
	m := newXDSMesh(t)
	src, err := kube.NewSource(kube.Config{
		Client: env.Clients.Kube, Dynamic: env.Clients.Dynamic, Namespace: env.UniqueNamespace(t, "ward-e2e", nil),
		Log:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnSnapshot: func(s *mesh.Snapshot) { m.srv.UpdateNow(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	k := env.Clients.Kube
	_, err = k.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []corev1.ServicePort{
			{Name: "grpc", Port: 7070, TargetPort: intstr.FromString("grpc")},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		b, lis := m.listen("echo-" + v)
		labels := map[string]string{"app": "echo", "version": v}
		pod, err := k.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "echo-" + v, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "echo", Image: "echo", Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: int32(b.port)}},
			}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No kubelet: report the pod running on loopback, where it is.
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
		if _, err := k.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		m.serve(b, lis, ns, labels)
	}
	c, _ := m.client("client", ns, "echo."+ns+".svc.cluster.local:7070")
	// hits makes n calls; an error (e.g. a route pushed a moment before its
	// cluster) makes the bounded wait try again.
	hits := func(n int) (map[string]int, error) {
		out := map[string]int{}
		for range n {
			got, err := call(ctx, c)
			if err != nil {
				return out, err
			}
			out[got]++
		}
		return out, nil
	}
	eventually(t, "both pods serve the Service", func() error {
		if h, err := hits(20); err != nil || h["echo-v1"] == 0 || h["echo-v2"] == 0 {
			return fmt.Errorf("hits %v, err %v", h, err)
		}
		return nil
	})

	env.Kubectl(t, strings.ReplaceAll(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: e2e-kube}
spec:
  host: echo.e2e-kube.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: e2e-kube}
spec:
  hosts: [echo.e2e-kube.svc.cluster.local]
  http:
  - route: [{destination: {host: echo.e2e-kube.svc.cluster.local, subset: v2}}]
`, "e2e-kube", ns), "apply", "-f", "-")
	eventually(t, "the VirtualService sends everything to v2", func() error {
		if h, err := hits(20); err != nil || h["echo-v1"] != 0 {
			return fmt.Errorf("hits %v, err %v", h, err)
		}
		return nil
	})

	env.Kubectl(t, "", "-n", ns, "delete", "virtualservice", "echo")
	eventually(t, "deleting the VirtualService restores both pods", func() error {
		if h, err := hits(20); err != nil || h["echo-v1"] == 0 || h["echo-v2"] == 0 {
			return fmt.Errorf("hits %v, err %v", h, err)
		}
		return nil
	})
}
