package install_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
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

var (
	crdGVR      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	mutatingGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
	cmGVR       = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretGVR   = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	pdbGVR      = schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}
	apGVR       = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
)

// The documented upgrade (docs/install.md): the previous release's
// manifests, applied with kubectl apply -k and running for a while (CA
// Secret, trust bundle, webhook caBundle written by Ward, users' Istio
// config and their own objects in ward-system), then `ward install` of
// this version: CRDs updated in place, the webhooks keep the caBundle
// Ward wrote, nothing users or Ward created is lost, a second run
// changes nothing, and objects a newer version drops are pruned.
func TestUpgradeFromPrevious(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	dyn := env.Clients.Dynamic
	const ns = deploy.DefaultNamespace
	previous := filepath.Join(env.Root, "install", "testdata", "previous")

	// Users' config exists before the validating webhook does (nothing
	// serves it in this harness).
	env.Kubectl(t, "", "apply", "-f", filepath.Join(previous, "crds.yaml"))
	env.Kubectl(t, "", "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=ward")
	shop := env.UniqueNamespace(t, "shop", nil)
	env.Kubectl(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-frontend, namespace: `+shop+`}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
`, "apply", "-f", "-")
	env.Kubectl(t, "", "apply", "-k", previous)
	// What a running Ward writes: the caBundle, its CA Secret and trust
	// bundle (managed-by=ward), and an operator's own ConfigMap.
	mwc, err := dyn.Resource(mutatingGVR).Get(ctx, "ward-sidecar-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caBundle := "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	for _, h := range hooks {
		_ = unstructured.SetNestedField(h.(map[string]any), caBundle, "clientConfig", "caBundle")
	}
	_ = unstructured.SetNestedSlice(mwc.Object, hooks, "webhooks")
	if _, err := dyn.Resource(mutatingGVR).Update(ctx, mwc, metav1.UpdateOptions{FieldManager: "ward"}); err != nil {
		t.Fatal(err)
	}
	runtime := []*unstructured.Unstructured{
		object("v1", "Secret", ns, "ward-ca", map[string]string{"app.kubernetes.io/managed-by": "ward"}),
		object("v1", "ConfigMap", ns, "ward-ca-root-cert", map[string]string{"app.kubernetes.io/managed-by": "ward", "app.kubernetes.io/part-of": "ward"}),
		object("v1", "ConfigMap", ns, "operator-notes", nil),
	}
	for _, o := range runtime {
		r := dyn.Resource(cmGVR)
		if o.GetKind() == "Secret" {
			r = dyn.Resource(secretGVR)
		}
		if _, err := r.Namespace(ns).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) { // -count=2
			t.Fatal(err)
		}
	}
	crdUIDs := map[string]string{}
	crds, err := dyn.Resource(crdGVR).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=ward"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds.Items {
		crdUIDs[c.GetName()] = string(c.GetUID())
	}

	in := newInstaller(env, ns)
	t.Cleanup(func() { _, _ = in.Uninstall(ctx, install.UninstallOptions{}) })
	objs := render(t, ns, "{}")
	rep, err := in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	t.Logf("upgrade from previous: %v in %v", actions(rep), rep.Elapsed)
	if got := actions(rep); got[install.Created] != 0 || got[install.Pruned] != 0 {
		t.Errorf("upgrade: %v, want nothing created or pruned (the same objects)", got)
	}

	// CRDs updated in place (same objects), now managed by ward-install.
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		c, err := dyn.Resource(crdGVR).Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil || string(c.GetUID()) != crdUIDs[o.GetName()] || !ownedBy(c, install.DefaultFieldManager) {
			t.Errorf("CRD %s after upgrade: uid %s (was %s), err %v; want the same object, applied by %s", o.GetName(), c.GetUID(), crdUIDs[o.GetName()], err, install.DefaultFieldManager)
		}
	}
	// The Deployment now hands the injector its image.
	d := deployment(t, env, ns)
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if !strings.Contains(strings.Join(args, " "), "--ward-image=ghcr.io/wardmesh/ward:latest") {
		t.Errorf("deployment args after upgrade: %v", args)
	}
	// The webhooks point at this version's Service and keep Ward's caBundle.
	mwc, err = dyn.Resource(mutatingGVR).Get(ctx, "ward-sidecar-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hooks, _, _ = unstructured.NestedSlice(mwc.Object, "webhooks")
	for _, h := range hooks {
		cc := h.(map[string]any)["clientConfig"].(map[string]any)
		svc := cc["service"].(map[string]any)
		if cc["caBundle"] != caBundle || svc["name"] != "ward" || svc["namespace"] != ns {
			t.Errorf("webhook %v after upgrade: clientConfig %v", h.(map[string]any)["name"], cc)
		}
	}
	// Nothing users or Ward created is lost.
	if _, err := dyn.Resource(apGVR).Namespace(shop).Get(ctx, "allow-frontend", metav1.GetOptions{}); err != nil {
		t.Errorf("user's AuthorizationPolicy after upgrade: %v", err)
	}
	checkRuntime := func(when string) {
		t.Helper()
		for _, o := range runtime {
			r := dyn.Resource(cmGVR)
			if o.GetKind() == "Secret" {
				r = dyn.Resource(secretGVR)
			}
			if _, err := r.Namespace(ns).Get(ctx, o.GetName(), metav1.GetOptions{}); err != nil {
				t.Errorf("%s %s %s: %v", when, o.GetKind(), o.GetName(), err)
			}
		}
	}
	checkRuntime("after upgrade")

	// Idempotent after the upgrade too.
	rep, err = in.Apply(ctx, objs, install.ApplyOptions{Force: true, Prune: true})
	if err != nil || actions(rep)[install.Unchanged] != len(objs) {
		t.Errorf("install after upgrade: %v, %v; want all %d unchanged", actions(rep), err, len(objs))
	}

	// A version without the PodDisruptionBudget (one replica) prunes the
	// one the previous release's kubectl apply created; a dry run first
	// shows the plan.
	one := render(t, ns, "replicas: 1")
	plan, err := in.Apply(ctx, one, install.ApplyOptions{Force: true, Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = in.Apply(ctx, one, install.ApplyOptions{Force: true, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []install.Report{plan, rep} {
		var pruned []string
		for _, c := range r.Changes {
			if c.Action == install.Pruned {
				pruned = append(pruned, c.Ref.String())
			}
		}
		if want := "PodDisruptionBudget/" + ns + "/ward"; strings.Join(pruned, " ") != want {
			t.Errorf("pruned (dry run %v): %v, want %s", r.DryRun, pruned, want)
		}
	}
	if _, err := dyn.Resource(pdbGVR).Namespace(ns).Get(ctx, "ward", metav1.GetOptions{}); err == nil {
		t.Error("PodDisruptionBudget still there after the prune")
	}
	checkRuntime("after prune")

	// The documented rollback: the previous manifests, server-side, under
	// install's field manager, so that what only this version set goes.
	env.Kubectl(t, "", "apply", "--server-side", "--force-conflicts", "--field-manager="+install.DefaultFieldManager, "-k", previous)
	d = deployment(t, env, ns)
	cs, _, _ = unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	args, _, _ = unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if strings.Contains(strings.Join(args, " "), "--ward-image") {
		t.Errorf("deployment args after the rollback: %v, want the previous release's", args)
	}
	if _, err := dyn.Resource(pdbGVR).Namespace(ns).Get(ctx, "ward", metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget after the rollback: %v", err)
	}
	checkRuntime("after rollback")

	// Uninstall keeps users' and Ward's state: CRDs, namespace, CA.
	if _, err := in.Uninstall(ctx, install.UninstallOptions{Wait: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(apGVR).Namespace(shop).Get(ctx, "allow-frontend", metav1.GetOptions{}); err != nil {
		t.Errorf("user's AuthorizationPolicy after uninstall: %v", err)
	}
	checkRuntime("after uninstall")
	if out := env.Kubectl(t, "", "get", "all,cm,sa,role,rolebinding", "-n", ns, "-o", "name"); !bytes.Equal(bytes.TrimSpace([]byte(out)), []byte(strings.Join([]string{"configmap/operator-notes", "configmap/ward-ca-root-cert"}, "\n"))) {
		t.Errorf("left in %s after uninstall:\n%s", ns, out)
	}
}

func object(apiVersion, kind, ns, name string, labels map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	o.SetNamespace(ns)
	o.SetName(name)
	o.SetLabels(labels)
	return o
}
