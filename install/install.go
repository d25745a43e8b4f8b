package install

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Labels that decide what install owns (see the package documentation).
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ownedSelector: part of Ward, and not an object Ward creates itself
	// at run time.
	ownedSelector = LabelPartOf + "=ward," + LabelManagedBy + "!=ward"
)

// DefaultFieldManager is the server-side apply field manager of install.
const DefaultFieldManager = "ward-install"

// Config are an Installer's collaborators.
type Config struct {
	Dynamic dynamic.Interface
	// Namespace is Ward's namespace: install owns namespaced objects only
	// there.
	Namespace    string
	FieldManager string        // default DefaultFieldManager
	Log          *slog.Logger  // default: discard
	Poll         time.Duration // interval of the bounded waits; default 250ms
}

// Installer applies and removes Ward's manifests.
type Installer struct {
	cfg Config
}

// New returns an Installer, filling Config's defaults.
func New(cfg Config) *Installer {
	if cfg.FieldManager == "" {
		cfg.FieldManager = DefaultFieldManager
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	return &Installer{cfg: cfg}
}

// Action is what happened (or, in a dry run, would happen) to an object.
type Action string

// Actions.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"  // owned, no longer in the manifests: deleted
	Deleted    Action = "deleted" // by uninstall
	Kept       Action = "kept"    // a CRD or the namespace, kept by uninstall without Purge
)

// Change is one object's line in a report.
type Change struct {
	Ref
	Action Action `json:"action"`
}

// Report is what Apply or Uninstall did.
type Report struct {
	DryRun  bool          `json:"dryRun"`
	Changes []Change      `json:"changes"`
	Elapsed time.Duration `json:"elapsed"`
	// Ready: the readiness wait succeeded (false when skipped or failed).
	Ready bool `json:"ready"`
}

// Count returns how many changes have action a.
func (r Report) Count(a Action) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// ApplyOptions steer Apply.
type ApplyOptions struct {
	// DryRun asks the API server to validate and admit every change
	// without persisting it (dryRun=All); the report is the plan.
	DryRun bool
	// Force takes over fields another manager owns (for example a
	// previous `kubectl apply`), as istioctl does.
	Force bool
	// Prune deletes owned objects the manifests no longer have.
	Prune bool
	// Wait bounds the readiness wait; 0 skips it.
	Wait time.Duration
}

func (in *Installer) resource(k kind, ns string) dynamic.ResourceInterface {
	if k.namespaced {
		return in.cfg.Dynamic.Resource(k.gvr).Namespace(ns)
	}
	return in.cfg.Dynamic.Resource(k.gvr)
}

// sortByKind orders objects for apply (reverse for delete), keeping the
// manifests' order within a kind.
func sortByKind(objs []*unstructured.Unstructured, reverse bool) ([]*unstructured.Unstructured, error) {
	rank := make(map[*unstructured.Unstructured]int, len(objs))
	for _, o := range objs {
		_, r, err := kindOf(o)
		if err != nil {
			return nil, err
		}
		rank[o] = r
	}
	out := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool {
		if reverse {
			return rank[out[i]] > rank[out[j]]
		}
		return rank[out[i]] < rank[out[j]]
	})
	return out, nil
}

// Apply server-side-applies objs in dependency order, waits for the CRDs
// to be served, prunes, and waits for readiness. A readiness timeout is a
// *NotReadyError after everything was applied.
func (in *Installer) Apply(ctx context.Context, objs []*unstructured.Unstructured, o ApplyOptions) (Report, error) {
	start := time.Now()
	rep := Report{DryRun: o.DryRun}
	sorted, err := sortByKind(objs, false)
	if err != nil {
		return rep, err
	}
	var crds []*unstructured.Unstructured
	plannedNS := map[string]bool{} // namespaces a dry run would create
	for _, obj := range sorted {
		if obj.GetKind() != "CustomResourceDefinition" && len(crds) > 0 {
			if err := in.waitEstablished(ctx, crds, o.DryRun); err != nil {
				return rep, err
			}
			crds = nil
		}
		c, err := in.applyOne(ctx, obj, o, plannedNS)
		if err != nil {
			return rep, err
		}
		rep.Changes = append(rep.Changes, c)
		if c.Kind == "CustomResourceDefinition" {
			crds = append(crds, obj)
		}
		if c.Kind == "Namespace" && c.Action == Created && o.DryRun {
			plannedNS[c.Name] = true
		}
	}
	if err := in.waitEstablished(ctx, crds, o.DryRun); err != nil {
		return rep, err
	}
	if o.Prune {
		pruned, err := in.prune(ctx, objs, o.DryRun)
		rep.Changes = append(rep.Changes, pruned...)
		if err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	if o.Wait > 0 && !o.DryRun {
		if err := in.WaitReady(ctx, objs, o.Wait); err != nil {
			rep.Elapsed = time.Since(start)
			return rep, err
		}
		rep.Ready = true
		rep.Elapsed = time.Since(start)
	}
	return rep, nil
}

func (in *Installer) applyOne(ctx context.Context, obj *unstructured.Unstructured, o ApplyOptions, plannedNS map[string]bool) (Change, error) {
	k, _, err := kindOf(obj)
	if err != nil {
		return Change{}, err
	}
	ref := refOf(obj)
	ri := in.resource(k, obj.GetNamespace())
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		before, err = nil, nil
	}
	if err != nil {
		return Change{}, fmt.Errorf("install: get %s: %w", ref, err)
	}
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return Change{}, fmt.Errorf("install: encode %s: %w", ref, err)
	}
	opts := metav1.PatchOptions{FieldManager: in.cfg.FieldManager, Force: &o.Force}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts)
	if err != nil && o.DryRun && before == nil && k.namespaced && plannedNS[obj.GetNamespace()] && apierrors.IsNotFound(err) {
		// The namespace a dry run would create does not exist to be
		// dry-run into.
		return in.logged(Change{Ref: ref, Action: Created}), nil
	}
	if apierrors.IsConflict(err) {
		return Change{}, fmt.Errorf("install: apply %s: %w (another manager owns these fields; force conflicts to take them over)", ref, err)
	}
	if err != nil {
		return Change{}, fmt.Errorf("install: apply %s: %w", ref, err)
	}
	return in.logged(Change{Ref: ref, Action: changeOf(before, after, o.DryRun)}), nil
}

// changeOf compares an object before and after an apply: by
// resourceVersion, or in a dry run (which keeps it) by content.
func changeOf(before, after *unstructured.Unstructured, dryRun bool) Action {
	switch {
	case before == nil:
		return Created
	case !dryRun && before.GetResourceVersion() == after.GetResourceVersion():
		return Unchanged
	case !dryRun:
		return Configured
	case equalContent(before, after):
		return Unchanged
	default:
		return Configured
	}
}

func equalContent(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) string {
		c := u.DeepCopy()
		for _, f := range [][]string{{"metadata", "managedFields"}, {"metadata", "resourceVersion"}, {"metadata", "generation"}, {"status"}} {
			unstructured.RemoveNestedField(c.Object, f...)
		}
		b, _ := json.Marshal(c.Object)
		return string(b)
	}
	return strip(a) == strip(b)
}

func (in *Installer) logged(c Change) Change {
	in.cfg.Log.Info("install", "kind", c.Kind, "namespace", c.Namespace, "name", c.Name, "action", string(c.Action))
	return c
}

// owned lists the objects install owns, in apply order.
func (in *Installer) owned(ctx context.Context) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, k := range kinds {
		l, err := in.resource(k, in.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: ownedSelector})
		if apierrors.IsNotFound(err) && k.namespaced {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("install: list %s: %w", k.gvr.Resource, err)
		}
		for i := range l.Items {
			item := &l.Items[i]
			if k.name == "Namespace" && item.GetName() != in.cfg.Namespace {
				continue // another installation's
			}
			item.SetAPIVersion(k.gvr.GroupVersion().String())
			item.SetKind(k.name)
			out = append(out, item)
		}
	}
	return out, nil
}

// keptByDefault: a CRD (its deletion deletes every object of its kind)
// or the namespace (Ward's CA Secret lives there).
func keptByDefault(o *unstructured.Unstructured) bool {
	return o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace"
}

// prune deletes owned objects that are not in objs, CRDs and namespaces
// excepted.
func (in *Installer) prune(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) ([]Change, error) {
	want := map[Ref]bool{}
	for _, o := range objs {
		want[refOf(o)] = true
	}
	have, err := in.owned(ctx)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, o := range reverse(have) {
		if want[refOf(o)] || keptByDefault(o) {
			continue
		}
		if err := in.delete(ctx, o, dryRun); err != nil {
			return out, err
		}
		out = append(out, in.logged(Change{Ref: refOf(o), Action: Pruned}))
	}
	return out, nil
}

func reverse(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[len(objs)-1-i] = o
	}
	return out
}

func (in *Installer) delete(ctx context.Context, o *unstructured.Unstructured, dryRun bool) error {
	k, _, err := kindOf(o)
	if err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err = in.resource(k, o.GetNamespace()).Delete(ctx, o.GetName(), opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("install: delete %s: %w", refOf(o), err)
	}
	return nil
}

// UninstallOptions steer Uninstall.
type UninstallOptions struct {
	DryRun bool
	// Purge also deletes the CRDs (and with them every Istio object in
	// the cluster) and the namespace (and Ward's CA in it).
	Purge bool
	// Wait bounds the wait for the deleted objects to be gone; 0 skips it.
	Wait time.Duration
}

// Uninstall deletes what install owns, webhooks first.
func (in *Installer) Uninstall(ctx context.Context, o UninstallOptions) (Report, error) {
	start := time.Now()
	rep := Report{DryRun: o.DryRun}
	have, err := in.owned(ctx)
	if err != nil {
		return rep, err
	}
	var deleted []*unstructured.Unstructured
	for _, obj := range reverse(have) {
		if keptByDefault(obj) && !o.Purge {
			rep.Changes = append(rep.Changes, in.logged(Change{Ref: refOf(obj), Action: Kept}))
			continue
		}
		if err := in.delete(ctx, obj, o.DryRun); err != nil {
			return rep, err
		}
		rep.Changes = append(rep.Changes, in.logged(Change{Ref: refOf(obj), Action: Deleted}))
		deleted = append(deleted, obj)
	}
	if o.Wait > 0 && !o.DryRun {
		if err := in.waitGone(ctx, deleted, o.Wait); err != nil {
			rep.Elapsed = time.Since(start)
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}
