package webhook_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/wardmesh/ward/webhook"
)

// FuzzAdmission sends arbitrary bodies to both endpoints: the webhook port
// is reachable from the cluster network, so anything may arrive. It must
// never panic, and must answer either 400 or a well-formed review whose
// UID echoes the request's.
func FuzzAdmission(f *testing.F) {
	review := func(kind, op string, obj string) []byte {
		b, _ := json.Marshal(map[string]any{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]any{
				"uid": "u1", "kind": map[string]string{"group": "", "version": "v1", "kind": kind},
				"resource":  map[string]string{"group": "", "version": "v1", "resource": "pods"},
				"namespace": "inj", "operation": op, "object": json.RawMessage(obj),
			},
		})
		return b
	}
	f.Add("/inject", review("Pod", "CREATE", `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"a"}]}}`))
	f.Add("/inject", review("Pod", "CREATE", `{"metadata":{"name":"p","labels":{"sidecar.istio.io/inject":"true"}},"spec":{"hostNetwork":true}}`))
	f.Add("/validate", review("AuthorizationPolicy", "CREATE", `{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"p"},"spec":{"rules":[{"to":[{"operation":{"methods":["GIT"]}}]}]}}`))
	f.Add("/validate", review("VirtualService", "UPDATE", `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"v"},"spec":{"hosts":["a"],"http":[{"route":[{"destination":{"host":"a"},"weight":1e99}]}]}}`))
	f.Add("/validate", []byte(`{"request":{"object":[]}}`))
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "inj", Labels: map[string]string{webhook.LabelInjectNamespace: "enabled"}}})
	srv, err := webhook.New(webhook.Config{Client: client, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		if path != "/inject" && path != "/validate" {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		if rec.Code == http.StatusBadRequest {
			return
		}
		var in, out admissionv1.AdmissionReview
		_ = json.Unmarshal(body, &in)
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("status %d, unreadable response %q: %v", rec.Code, rec.Body.String(), err)
		}
		if in.Request != nil && out.Response.UID != in.Request.UID {
			t.Fatalf("response uid %q, request uid %q", out.Response.UID, in.Request.UID)
		}
	})
}
