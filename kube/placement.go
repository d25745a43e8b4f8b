package kube

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
)

// indexNode indexes pods by spec.nodeName.
const indexNode = "spec.nodeName"

// DataplaneAmbient and DataplaneNone are the values of LabelDataplaneMode
// that enrol a pod in ambient mode and keep it out.
const (
	DataplaneAmbient = ca.DataplaneAmbient
	DataplaneNone    = "none"
)

// Placement is the Kubernetes-mode ca.Placement: a workload identity is on
// a node when a pod of that namespace and service account, scheduled there
// (spec.nodeName, set by the scheduler's binding), Pending or Running and
// not being deleted, is enrolled in ambient mode (its own
// istio.io/dataplane-mode label, or its namespace's unless the pod says
// otherwise). Host-network pods are never enrolled. It reads the Source's
// pod and namespace informers, so it answers from the same cache the
// config comes from, and errors until that cache has synced.
type Placement struct {
	pods, nss cache.SharedIndexInformer
}

var _ ca.Placement = (*Placement)(nil)

// Placement returns the placement over s's informers.
func (s *Source) Placement() *Placement { return &Placement{pods: s.pods, nss: s.nss} }

func podNode(o any) ([]string, error) {
	pod, ok := o.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{pod.Spec.NodeName}, nil
}

// OnNode implements ca.Placement.
func (p *Placement) OnNode(_ context.Context, node string, id mesh.Identity) (bool, error) {
	if !p.pods.HasSynced() || !p.nss.HasSynced() {
		return false, errors.New("pod cache has not synced")
	}
	objs, err := p.pods.GetIndexer().ByIndex(indexNode, node)
	if err != nil {
		return false, fmt.Errorf("pods on node %s: %w", node, err)
	}
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok && pod.Namespace == id.Namespace && podAccount(pod) == id.ServiceAccount && p.ambient(pod) {
			return true, nil
		}
	}
	return false, nil
}

func podAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return mesh.DefaultServiceAccount
	}
	return pod.Spec.ServiceAccountName
}

// ambient reports whether a live pod is enrolled in ambient mode.
func (p *Placement) ambient(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Spec.HostNetwork ||
		(pod.Status.Phase != corev1.PodPending && pod.Status.Phase != corev1.PodRunning) {
		return false
	}
	if mode, own := pod.Labels[LabelDataplaneMode]; own {
		return mode == DataplaneAmbient
	}
	o, ok, err := p.nss.GetStore().GetByKey(pod.Namespace)
	if err != nil || !ok {
		return false
	}
	return o.(*corev1.Namespace).Labels[LabelDataplaneMode] == DataplaneAmbient
}
