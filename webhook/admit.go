package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// validate checks an Istio object exactly as the file source does. Every
// violation is in the denial message, with its field path; Istio's
// warnings are returned as admission warnings.
func (s *Server) validate(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	if req.SubResource != "" { // status writes are not spec changes
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(req.Object.Raw, &obj); err != nil {
		return deny(http.StatusBadRequest, fmt.Sprintf("decode object: %v", err))
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		if n, _ := md["name"].(string); n == "" && req.Name != "" {
			md["name"] = req.Name
		}
	}
	c, err := ValidateObject(obj, req.Namespace)
	if err != nil {
		s.cfg.Log.Info("rejected object", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "err", err)
		return deny(http.StatusUnprocessableEntity, err.Error())
	}
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	if c != nil {
		for _, w := range schema.Warnings(c) {
			resp.Warnings = append(resp.Warnings, w.Error())
		}
	}
	return resp
}

// ValidateObject decodes and validates one object given as its JSON map
// with the file source's rules and messages (kube.DecodeObject). A nil
// Config with nil error is an object of a kind Ward does not read.
func ValidateObject(obj map[string]any, namespace string) (*mesh.Config, error) {
	c, err := kube.DecodeObject(obj, namespace, mesh.Source{})
	var oe *schema.ObjectError
	if errors.As(err, &oe) || err == nil {
		return c, err
	}
	return nil, fmt.Errorf("validate: %w", err)
}

// inject mutates a pod being created. It never fails the request for a
// pod it should not touch; a pod it cannot decode is refused.
func (s *Server) inject(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, fmt.Sprintf("decode pod: %v", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	ns, err := s.cfg.Client.CoreV1().Namespaces().Get(ctx, req.Namespace, metav1.GetOptions{})
	if err != nil {
		return deny(http.StatusInternalServerError, fmt.Sprintf("get namespace %s: %v", req.Namespace, err))
	}
	d := ShouldInject(&pod, ns, s.cfg.Inject)
	log := s.cfg.Log.With("namespace", req.Namespace, "name", podName(&pod))
	if !d.Inject {
		log.Debug("not injecting", "reason", d.Reason)
		return allow
	}
	out, changed, err := Inject(&pod, s.cfg.Inject)
	if err != nil {
		return deny(http.StatusUnprocessableEntity, err.Error())
	}
	if !changed {
		return allow
	}
	patch, err := podPatch(out)
	if err != nil {
		return deny(http.StatusInternalServerError, err.Error())
	}
	log.Info("injected", "reason", d.Reason)
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}

// podPatch is a JSON patch setting the parts of the pod injection changes.
// "add" replaces an existing member, so the patch is correct whether or
// not the pod had them.
func podPatch(p *corev1.Pod) ([]byte, error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	ops := []op{
		{"add", "/metadata/labels", p.Labels},
		{"add", "/metadata/annotations", p.Annotations},
		{"add", "/spec/initContainers", p.Spec.InitContainers},
		{"add", "/spec/containers", p.Spec.Containers},
		{"add", "/spec/volumes", p.Spec.Volumes},
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("pod patch: %w", err)
	}
	return b, nil
}
