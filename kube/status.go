package kube

import (
	"context"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wardmesh/ward/mesh"
)

// ConditionAccepted is the status condition Ward sets on an Istio object
// it rejected or ignored (status "False"), and sets back to "True" once
// the problem is gone.
const ConditionAccepted = "Accepted"

type condition struct {
	Status, Reason, Message string
}

// writeStatus brings each object's Accepted condition in line with the
// problems found: False with reason and message for a problem, True for an
// object whose earlier problem is gone, untouched otherwise (so healthy
// objects cost no writes).
func (s *Source) writeStatus(ctx context.Context, problems []Problem) {
	want := map[mesh.Key]condition{}
	for _, p := range problems {
		c := want[p.Key]
		c.Status = "False"
		if c.Reason == "" {
			c.Reason = p.Reason
		}
		c.Message = strings.TrimPrefix(c.Message+"; "+p.Message, "; ")
		want[p.Key] = c
	}
	keys := make([]mesh.Key, 0, len(s.decoded))
	for k := range s.decoded {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		u := s.decoded[k].item
		cur, has := currentCondition(u)
		w, bad := want[k]
		switch {
		case bad && (!has || cur != w):
		case !bad && has && cur.Status == "False":
			w = condition{Status: "True", Reason: "Valid", Message: "accepted"}
		default:
			continue
		}
		if err := s.updateStatus(ctx, k, u, w); err != nil {
			s.cfg.Log.Warn("write status", "kind", k.Kind, "namespace", k.Namespace, "name", k.Name, "err", err)
		}
	}
}

func currentCondition(u *unstructured.Unstructured) (condition, bool) {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, o := range list {
		m, _ := o.(map[string]any)
		if m["type"] == ConditionAccepted {
			str := func(k string) string { v, _ := m[k].(string); return v }
			return condition{Status: str("status"), Reason: str("reason"), Message: str("message")}, true
		}
	}
	return condition{}, false
}

func (s *Source) updateStatus(ctx context.Context, k mesh.Key, u *unstructured.Unstructured, c condition) error {
	obj := u.DeepCopy()
	cond := map[string]any{
		"type": ConditionAccepted, "status": c.Status, "reason": c.Reason, "message": c.Message,
		"lastTransitionTime": metav1.NewTime(time.Now()).UTC().Format(time.RFC3339),
		"observedGeneration": obj.GetGeneration(),
	}
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	out := []any{cond}
	for _, o := range list {
		if m, _ := o.(map[string]any); m["type"] != ConditionAccepted {
			out = append(out, o)
		}
	}
	if err := unstructured.SetNestedSlice(obj.Object, out, "status", "conditions"); err != nil {
		return err
	}
	_, err := s.cfg.Dynamic.Resource(GVR(k.Kind)).Namespace(k.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err
}
