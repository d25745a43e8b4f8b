package install

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// NotReadyError is a bounded wait that ran out: what was not ready, and
// why.
type NotReadyError struct {
	What    string
	Timeout time.Duration
	Pending []string // one line per object not there yet
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("install: %s not reached after %v: %s", e.What, e.Timeout, strings.Join(e.Pending, "; "))
}

// poll calls check every Poll until it reports nothing pending, ctx ends
// or timeout passes; then the last pending lines make a *NotReadyError.
func (in *Installer) poll(ctx context.Context, what string, timeout time.Duration, check func(context.Context) ([]string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(in.cfg.Poll)
	defer t.Stop()
	var last []string
	for {
		pending, err := check(ctx)
		var status apierrors.APIStatus
		switch {
		case errors.As(err, &status) && ctx.Err() == nil:
			return err // the API server answered: waiting will not help
		case err != nil:
			// Transport trouble, the client's rate limiter or the
			// deadline cutting a check short: retry until the deadline,
			// reporting what the last complete check found.
			if len(last) == 0 {
				last = []string{err.Error()}
			}
		case len(pending) == 0:
			return nil
		default:
			last = pending
		}
		select {
		case <-ctx.Done():
			if len(last) == 0 {
				last = []string{ctx.Err().Error()}
			}
			return &NotReadyError{What: what, Timeout: timeout, Pending: last}
		case <-t.C:
		}
	}
}

// crdEstablishTimeout bounds the wait for a CRD to be served; the API
// server establishes one in well under a second.
const crdEstablishTimeout = 30 * time.Second

func (in *Installer) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured, dryRun bool) error {
	if len(crds) == 0 || dryRun {
		return nil
	}
	k, _, _ := kindOf(crds[0])
	return in.poll(ctx, "CRDs established", crdEstablishTimeout, func(ctx context.Context) ([]string, error) {
		var pending []string
		for _, c := range crds {
			got, err := in.resource(k, "").Get(ctx, c.GetName(), metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("install: get %s: %w", refOf(c), err)
			}
			if !conditionTrue(got, "Established") {
				pending = append(pending, refOf(c).String()+" not Established")
			}
		}
		return pending, nil
	})
}

func conditionTrue(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}

// WaitReady waits until every Deployment in objs has rolled out: the
// controller saw its latest spec, every replica runs it and is available
// (kubectl rollout status's rule).
func (in *Installer) WaitReady(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	var deps []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deps = append(deps, o)
		}
	}
	if len(deps) == 0 {
		return nil
	}
	k, _, _ := kindOf(deps[0])
	return in.poll(ctx, "control plane ready", timeout, func(ctx context.Context) ([]string, error) {
		var pending []string
		for _, d := range deps {
			got, err := in.resource(k, d.GetNamespace()).Get(ctx, d.GetName(), metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("install: get %s: %w", refOf(d), err)
			}
			if why := rolloutPending(got); why != "" {
				pending = append(pending, refOf(d).String()+": "+why)
			}
		}
		return pending, nil
	})
}

// rolloutPending says why a Deployment has not rolled out, "" when it has.
func rolloutPending(d *unstructured.Unstructured) string {
	num := func(path ...string) int64 {
		v, _, _ := unstructured.NestedInt64(d.Object, path...)
		return v
	}
	want, found, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	obs, updated, total, avail := num("status", "observedGeneration"), num("status", "updatedReplicas"), num("status", "replicas"), num("status", "availableReplicas")
	switch {
	case obs < d.GetGeneration():
		return fmt.Sprintf("controller has not observed generation %d (at %d; is kube-controller-manager running?)", d.GetGeneration(), obs)
	case updated < want:
		return fmt.Sprintf("%d of %d replicas updated", updated, want)
	case total > updated:
		return fmt.Sprintf("%d old replicas pending termination", total-updated)
	case avail < updated:
		return fmt.Sprintf("%d of %d updated replicas available", avail, updated)
	}
	return ""
}

// waitGone waits until every object in objs is deleted.
func (in *Installer) waitGone(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	return in.poll(ctx, "deletion", timeout, func(ctx context.Context) ([]string, error) {
		var pending []string
		for _, o := range objs {
			k, _, _ := kindOf(o)
			got, err := in.resource(k, o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("install: get %s: %w", refOf(o), err)
			}
			why := "still present"
			if got.GetDeletionTimestamp() != nil {
				why = "terminating (finalizers " + strings.Join(got.GetFinalizers(), ",") + ")"
				if spec, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "finalizers"); len(spec) > 0 {
					why = "terminating (finalizers " + strings.Join(spec, ",") + ")"
				}
			}
			pending = append(pending, refOf(o).String()+" "+why)
		}
		return pending, nil
	})
}
