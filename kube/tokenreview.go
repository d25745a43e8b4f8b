package kube

import (
	"context"
	"fmt"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wardmesh/ward/ca"
)

// Extra keys the API server sets on a TokenReview of a pod-bound token.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// TokenReviewer authenticates service-account tokens with the TokenReview
// API for the CA's Kubernetes authenticator, which takes the namespace and
// service account from the review. It also requires the token to be bound
// to a pod that still exists (same UID, same service account, not being
// deleted): a token outliving its pod, or one minted for a service account
// with no pod (`kubectl create token` without --bound-object-kind Pod), is
// refused. A refusal is a review with Authenticated false and the reason.
//
// The node of the bound pod is reported as the user extra
// ca.ExtraNodeName, which the CA uses to bind a node proxy's token to its
// node: the API server's own extra when it set one (it must agree with
// the pod's spec.nodeName), else the UID-checked pod's spec.nodeName.
type TokenReviewer struct {
	Client kubernetes.Interface
}

var _ ca.TokenReviewer = TokenReviewer{}

// Review implements ca.TokenReviewer.
func (r TokenReviewer) Review(ctx context.Context, token string, audiences []string) (*authnv1.TokenReview, error) {
	tr, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create token review: %w", err)
	}
	if !tr.Status.Authenticated || tr.Status.Error != "" {
		return tr, nil
	}
	pod, reason := r.checkPod(ctx, tr.Status.User)
	if reason == "" {
		reason = bindNode(&tr.Status.User, pod)
	}
	if reason != "" {
		tr.Status.Authenticated = false
		tr.Status.Error = reason
	}
	return tr, nil
}

// bindNode sets the user's node extra from the pod, or returns why the
// token's node and the pod's disagree.
func bindNode(u *authnv1.UserInfo, pod *corev1.Pod) string {
	node, has := u.Extra[ca.ExtraNodeName]
	switch {
	case has && (len(node) != 1 || node[0] != pod.Spec.NodeName):
		return fmt.Sprintf("token names node %v but pod %s/%s is on %q", node, pod.Namespace, pod.Name, pod.Spec.NodeName)
	case has || pod.Spec.NodeName == "":
		return ""
	}
	if u.Extra == nil {
		u.Extra = map[string]authnv1.ExtraValue{}
	}
	u.Extra[ca.ExtraNodeName] = authnv1.ExtraValue{pod.Spec.NodeName}
	return ""
}

// checkPod returns the reviewed user's pod, or why it is not acceptable.
func (r TokenReviewer) checkPod(ctx context.Context, u authnv1.UserInfo) (*corev1.Pod, string) {
	rest, ok := strings.CutPrefix(u.Username, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return nil, "not a service account"
	}
	name, uid := one(u.Extra[extraPodName]), one(u.Extra[extraPodUID])
	if name == "" || uid == "" {
		return nil, "token is not bound to a pod"
	}
	pod, err := r.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("pod %s/%s does not exist", ns, name)
	case err != nil:
		return nil, fmt.Sprintf("get pod %s/%s: %v", ns, name, err)
	case string(pod.UID) != uid:
		return nil, fmt.Sprintf("pod %s/%s was replaced", ns, name)
	case pod.DeletionTimestamp != nil:
		return nil, fmt.Sprintf("pod %s/%s is being deleted", ns, name)
	case pod.Spec.ServiceAccountName != sa:
		return nil, fmt.Sprintf("pod %s/%s runs as %q, not %q", ns, name, pod.Spec.ServiceAccountName, sa)
	}
	return pod, ""
}

func one(v authnv1.ExtraValue) string {
	if len(v) != 1 {
		return ""
	}
	return v[0]
}
