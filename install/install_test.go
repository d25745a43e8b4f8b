package install_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wardmesh/ward/deploy"
	"github.com/wardmesh/ward/install"
	"github.com/wardmesh/ward/kube/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

var nsSeq atomic.Int64

// freshNamespace names a namespace no test used yet (the harness cannot
// finish namespace deletions).
func freshNamespace(base string) string { return fmt.Sprintf("%s-%d", base, nsSeq.Add(1)) }

func render(t *testing.T, ns, values string) []*unstructured.Unstructured {
	t.Helper()
	v, err := deploy.Default().Merge([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := deploy.Render(v, ns)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Objects(ms)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func newInstaller(env *kubetest.Env, ns string) *install.Installer {
	return install.New(install.Config{Dynamic: env.Clients.Dynamic, Namespace: ns, Poll: 50 * time.Millisecond})
}

func gvr(o *unstructured.Unstructured) schema.GroupVersionResource {
	gv := o.GroupVersionKind().GroupVersion()
	res := strings.ToLower(o.GetKind()) + "s"
	switch o.GetKind() {
	case "PodDisruptionBudget":
		res = "poddisruptionbudgets"
	}
	return gv.WithResource(res)
}

func get(t *testing.T, env *kubetest.Env, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	t.Helper()
	r := env.Clients.Dynamic.Resource(gvr(o))
	if o.GetNamespace() != "" {
		return r.Namespace(o.GetNamespace()).Get(context.Background(), o.GetName(), metav1.GetOptions{})
	}
	return r.Get(context.Background(), o.GetName(), metav1.GetOptions{})
}

func actions(rep install.Report) map[install.Action]int {
	m := map[install.Action]int{}
	for _, c := range rep.Changes {
		m[c.Action]++
	}
	return m
}

// `ward install` against a real API server: everything applied in one
// run, nothing changed by a second, a dry run changes nothing and shows
// the plan, readiness is its own bounded step, and uninstall removes what
// install made but the CRDs and the namespace.
func TestInstallIdempotentUninstall(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	ns := freshNamespace("ward-install")
	objs := render(t, ns, "{}")
	in := newInstaller(env, ns)
	t.Cleanup(func() { _, _ = in.Uninstall(ctx, install.UninstallOptions{}) })

	// The plan of a first install: everything to create (the namespaced
	// objects dry-run into a namespace that does not exist yet), and
	// nothing persisted.
	rep, err := in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true, DryRun: true})
	if err != nil {
		t.Fatalf("dry run of a first install: %v", err)
	}
	if got := actions(rep); got[install.Created] < len(objs)-11 || len(rep.Changes) != len(objs) {
		t.Fatalf("dry run of a first install: %v, want all %d created (CRDs may exist)", got, len(objs))
	}
	if _, err := env.Clients.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s after a dry run: %v, want not found", ns, err)
	}

	rep, err = in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first install: %d objects in %v", len(rep.Changes), rep.Elapsed)
	if got := actions(rep); got[install.Created] < len(objs)-11 || got[install.Pruned] != 0 || len(rep.Changes) != len(objs) {
		t.Fatalf("first install: %v, want %d created (the 11 CRDs may exist)", got, len(objs))
	}
	for _, o := range objs {
		got, err := get(t, env, o)
		if err != nil {
			t.Fatalf("%s %s after install: %v", o.GetKind(), o.GetName(), err)
		}
		if !ownedBy(got, install.DefaultFieldManager) {
			t.Errorf("%s %s: no fields owned by %s", o.GetKind(), o.GetName(), install.DefaultFieldManager)
		}
	}

	start := time.Now()
	rep, err = in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second install: %v", time.Since(start))
	if got := actions(rep); got[install.Unchanged] != len(objs) || len(rep.Changes) != len(objs) {
		t.Fatalf("second install: %v, want all %d unchanged: %+v", got, len(objs), rep.Changes)
	}

	// A dry run of a change reports it and changes nothing.
	changed := render(t, ns, "replicas: 3\ntrustDomain: example.org")
	rep, err = in.Apply(ctx, changed, install.ApplyOptions{Force: true, Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var configured []string
	for _, c := range rep.Changes {
		if c.Action == install.Configured {
			configured = append(configured, c.Kind+"/"+c.Name)
		}
	}
	if want := "ConfigMap/ward-mesh Deployment/ward"; strings.Join(configured, " ") != want {
		t.Errorf("dry run configured %v, want %s", configured, want)
	}
	d := deployment(t, env, ns)
	if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != 2 {
		t.Errorf("after a dry run replicas = %d, want 2 (unchanged)", r)
	}

	// No kubelet or controller manager here: readiness times out with a
	// reason, after everything was applied.
	_, err = in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true, Wait: 2 * time.Second})
	var nr *install.NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "has not observed generation") {
		t.Fatalf("install with a readiness wait and no controllers: %v, want a NotReadyError naming the generation", err)
	}
	// Once the Deployment reports its replicas available, the wait ends.
	markAvailable(t, env, ns)
	if err := in.WaitReady(ctx, objs, 10*time.Second); err != nil {
		t.Fatalf("wait for an available Deployment: %v", err)
	}

	rep, err = in.Uninstall(ctx, install.UninstallOptions{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		_, err := get(t, env, o)
		kept := o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace"
		if kept && err != nil {
			t.Errorf("%s %s after uninstall: %v, want kept", o.GetKind(), o.GetName(), err)
		}
		if !kept && !apierrors.IsNotFound(err) {
			t.Errorf("%s %s after uninstall: %v, want not found", o.GetKind(), o.GetName(), err)
		}
	}
	if got := actions(rep); got[install.Kept] != 12 || got[install.Deleted] != len(objs)-12 {
		t.Errorf("uninstall: %v, want 12 kept (11 CRDs, the namespace) and %d deleted", got, len(objs)-12)
	}
	// Uninstalling again finds nothing to delete.
	rep, err = in.Uninstall(ctx, install.UninstallOptions{Wait: 10 * time.Second})
	if err != nil || actions(rep)[install.Deleted] != 0 {
		t.Errorf("second uninstall: %v, %v", actions(rep), err)
	}
}

func ownedBy(o *unstructured.Unstructured, manager string) bool {
	for _, f := range o.GetManagedFields() {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func deployment(t *testing.T, env *kubetest.Env, ns string) *unstructured.Unstructured {
	t.Helper()
	d, err := env.Clients.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(ns).Get(context.Background(), "ward", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// markAvailable writes the status a Deployment controller would once
// every replica is up.
func markAvailable(t *testing.T, env *kubetest.Env, ns string) {
	t.Helper()
	d := deployment(t, env, ns)
	n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	_ = unstructured.SetNestedField(d.Object, map[string]any{
		"observedGeneration": d.GetGeneration(), "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
	}, "status")
	if _, err := env.Clients.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(ns).UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
