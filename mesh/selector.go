package mesh

import (
	"google.golang.org/protobuf/proto"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Labels is a set of workload labels.
type Labels map[string]string

// Selector is a label selector by equality; an empty selector matches all.
type Selector map[string]string

// Matches reports whether every selector label is present in l.
func (s Selector) Matches(l Labels) bool {
	for k, v := range s {
		if got, ok := l[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// IsEmpty reports whether s selects everything.
func (s Selector) IsEmpty() bool { return len(s) == 0 }

type selectorSpec interface {
	GetSelector() *typev1beta1.WorkloadSelector
}

// SelectorOf returns the workload selector of a policy-like spec
// (PeerAuthentication, RequestAuthentication, AuthorizationPolicy) and
// whether the spec has one set. Other kinds return (nil, false).
func SelectorOf(spec proto.Message) (Selector, bool) {
	if s, ok := spec.(selectorSpec); ok && s.GetSelector() != nil {
		return Selector(s.GetSelector().GetMatchLabels()), true
	}
	return nil, false
}
