package kube

import (
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/ca"
)

// The node a token is bound to: the API server's extra when present (it
// must agree with the pod), else the UID-checked pod's spec.nodeName.
func TestBindNode(t *testing.T) {
	pod := func(node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{NodeName: node}}
	}
	for _, tc := range []struct {
		name    string
		extra   map[string]authnv1.ExtraValue
		pod     *corev1.Pod
		want    []string // the node extra afterwards; nil: none
		refusal string
	}{
		{name: "api server names it", extra: map[string]authnv1.ExtraValue{ca.ExtraNodeName: {"n1"}}, pod: pod("n1"), want: []string{"n1"}},
		{name: "older api server: from the pod", pod: pod("n1"), want: []string{"n1"}},
		{name: "unscheduled pod", pod: pod("")},
		{name: "disagreement", extra: map[string]authnv1.ExtraValue{ca.ExtraNodeName: {"n2"}}, pod: pod("n1"), refusal: "token names node [n2] but pod ns/p is on \"n1\""},
		{name: "two nodes", extra: map[string]authnv1.ExtraValue{ca.ExtraNodeName: {"n1", "n1"}}, pod: pod("n1"), refusal: "token names node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := authnv1.UserInfo{Extra: tc.extra}
			got := bindNode(&u, tc.pod)
			if tc.refusal != "" {
				if !strings.Contains(got, tc.refusal) {
					t.Fatalf("refusal %q, want %q", got, tc.refusal)
				}
				return
			}
			if got != "" {
				t.Fatalf("refused: %s", got)
			}
			if v := u.Extra[ca.ExtraNodeName]; strings.Join(v, ",") != strings.Join(tc.want, ",") || (tc.want == nil) != (v == nil) {
				t.Fatalf("node extra %v, want %v", v, tc.want)
			}
		})
	}
}
