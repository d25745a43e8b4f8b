package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/mesh"
)

// ambientWorld is a CA with the Kubernetes authenticator and Placement of
// a running Source, served on loopback, and a control-plane namespace.
type ambientWorld struct {
	env  *kubetest.Env
	ca   *ca.CA
	addr string
	cpNS string
	logs *syncBuffer
}

func newAmbientWorld(t *testing.T) *ambientWorld {
	t.Helper()
	env := kubetest.Require(t)
	w := &ambientWorld{env: env, cpNS: env.UniqueNamespace(t, "amb-cp", nil), logs: &syncBuffer{}}
	_, src := startSourceRef(t, env, w.cpNS)
	cfg := caConfig(t, slog.New(slog.NewTextHandler(w.logs, nil)))
	cfg.ServerIdentity = mesh.Identity{Namespace: w.cpNS, ServiceAccount: "ward"}
	cfg.TokenReviewer = kube.TokenReviewer{Client: env.Clients.Kube}
	cfg.Placement = src.Placement()
	cfg.Limits.LogEvery = time.Nanosecond // every refusal is logged
	c, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.ca, w.addr = c, caService(t, c)
	return w
}

func (w *ambientWorld) node(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := w.env.Clients.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.env.Clients.Kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
}

// pod creates a pod scheduled on node directly (no scheduler or kubelet
// runs); the API server sets it Pending.
func (w *ambientWorld) pod(t *testing.T, ns, name, sa, node string, labels map[string]string) *corev1.Pod {
	t.Helper()
	w.env.ServiceAccount(t, ns, sa)
	p, err := w.env.Clients.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "c"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// token is a TokenRequest for pod's service account bound to pod, with
// the CA's audience.
func (w *ambientWorld) token(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	exp := int64(3600)
	tr, err := w.env.Clients.Kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{ca.DefaultAudience}, ExpirationSeconds: &exp,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// issue asks for a certificate for id with a token or a client
// certificate, impersonating when imp is set; it returns the leaf.
func (w *ambientWorld) issue(t *testing.T, token string, cert *tls.Certificate, id spiffeid.ID, imp bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	t.Helper()
	cl, err := ca.Dial(ca.ClientConfig{
		Addr: w.addr, ServerID: w.ca.ServerID(), Token: token, Certificate: cert,
		Bundle: func() *x509bundle.Bundle { return x509bundle.FromX509Authorities(w.ca.TrustDomain(), w.ca.Roots()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id.String())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var chain []string
	if imp {
		chain, err = cl.CreateCertificateFor(ctx, id, csr, time.Hour)
	} else {
		chain, err = cl.CreateCertificate(ctx, csr, time.Hour)
	}
	if err != nil {
		return nil, nil, err
	}
	certs, _, err := ca.SplitChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != id.String() {
		t.Fatalf("issued certificate names %v, want %s", certs[0].URIs, id)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool(w.ca.Roots()...), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("issued certificate for %s does not chain to the CA: %v", id, err)
	}
	return certs[0], key, nil
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want %v", what, err, code)
	}
}

// TestNodeProxyEnrolsWithPodBoundTokenAndImpersonatesPodsOnItsNode is
// Istio's ztunnel rule against the real API server: the ward-node pod's
// bound token yields the identity of its node; that node certificate gets
// workload certificates only for ambient pods scheduled on the node.
func TestNodeProxyEnrolsWithPodBoundTokenAndImpersonatesPodsOnItsNode(t *testing.T) {
	w := newAmbientWorld(t)
	ctx := context.Background()
	n1, n2 := w.cpNS+"-n1", w.cpNS+"-n2"
	w.node(t, n1)
	w.node(t, n2)
	td := w.ca.TrustDomain()
	nodeID := func(n string) spiffeid.ID {
		id, err := ca.NodeID(td, w.cpNS, n)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	proxy := w.pod(t, w.cpNS, "ward-node-a", ca.NodeServiceAccount, n1, nil)
	tok := w.token(t, proxy)

	// The API server itself names the node of a pod-bound token.
	raw, err := w.env.Clients.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok, Audiences: []string{ca.DefaultAudience}}}, metav1.CreateOptions{})
	if err != nil || strings.Join(raw.Status.User.Extra[ca.ExtraNodeName], ",") != n1 {
		t.Fatalf("API server review extras = %v (err %v), want %s=%s", raw.Status.User.Extra, err, ca.ExtraNodeName, n1)
	}

	leaf, key, err := w.issue(t, tok, nil, nodeID(n1), false)
	if err != nil {
		t.Fatalf("ward-node token for a pod on %s: %v", n1, err)
	}
	nodeCert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	if _, _, err := w.issue(t, tok, nil, nodeID(n2), false); err == nil {
		t.Error("ward-node token of a pod on n1 got the identity of n2")
	}

	appNS := w.env.UniqueNamespace(t, "amb-app", nil)
	ambNS := w.env.UniqueNamespace(t, "amb-ns", map[string]string{kube.LabelDataplaneMode: kube.DataplaneAmbient})
	ambient := map[string]string{kube.LabelDataplaneMode: kube.DataplaneAmbient}
	onN1 := w.pod(t, appNS, "on-n1", "on-n1", n1, ambient)
	w.pod(t, appNS, "on-n2", "on-n2", n2, ambient)
	w.pod(t, appNS, "plain", "plain", n1, nil)
	w.pod(t, ambNS, "by-ns", "by-ns", n1, nil)
	w.pod(t, ambNS, "opted-out", "opted-out", n1, map[string]string{kube.LabelDataplaneMode: kube.DataplaneNone})
	wid := func(ns, sa string) spiffeid.ID {
		id, err := mesh.Identity{TrustDomain: td.Name(), Namespace: ns, ServiceAccount: sa}.SPIFFEID()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	// The informer sees pods shortly after they are created.
	kubetest.Eventually(t, waitFor, func() string {
		if _, _, err := w.issue(t, "", nodeCert, wid(appNS, "on-n1"), true); err != nil {
			return "ambient pod on n1 not issued: " + err.Error()
		}
		return ""
	})
	if _, _, err := w.issue(t, "", nodeCert, wid(ambNS, "by-ns"), true); err != nil {
		t.Errorf("pod in an ambient namespace on n1: %v", err)
	}
	for name, id := range map[string]spiffeid.ID{
		"ambient pod on n2":          wid(appNS, "on-n2"),
		"pod not in ambient":         wid(appNS, "plain"),
		"pod opted out of ambient":   wid(ambNS, "opted-out"),
		"no pod at all":              wid(appNS, "nobody"),
		"reserved control-plane id":  wid(w.cpNS, "ward"),
		"another node proxy's id":    nodeID(n2),
		"control-plane namespace sa": wid(w.cpNS, ca.NodeServiceAccount),
	} {
		_, _, err := w.issue(t, "", nodeCert, id, true)
		wantCode(t, name, err, codes.PermissionDenied)
	}
	if want := "no workload with identity " + wid(appNS, "on-n2").String() + " is scheduled on node " + n1; !strings.Contains(w.logs.String(), want) {
		t.Errorf("the refusal log does not name the node (%q):\n%s", want, w.logs.String())
	}
	// The token alone enrols the node but cannot impersonate.
	_, _, err = w.issue(t, tok, nil, wid(appNS, "on-n1"), true)
	wantCode(t, "impersonation by token", err, codes.PermissionDenied)

	// A token of any other service account never yields a node identity,
	// even one named ward-node outside the control-plane namespace.
	other := w.pod(t, appNS, "fake-node", ca.NodeServiceAccount, n1, nil)
	_, _, err = w.issue(t, w.token(t, other), nil, nodeID(n1), false)
	wantCode(t, "ward-node token outside the control plane's namespace", err, codes.InvalidArgument)
	_, _, err = w.issue(t, w.token(t, onN1), nil, nodeID(n1), false)
	wantCode(t, "workload token asking for a node identity", err, codes.InvalidArgument)

	// A ward-node pod on no node gets no node identity.
	unscheduled := w.pod(t, w.cpNS, "ward-node-unscheduled", ca.NodeServiceAccount, "", nil)
	_, _, err = w.issue(t, w.token(t, unscheduled), nil, nodeID(n1), false)
	wantCode(t, "ward-node token of an unscheduled pod", err, codes.Unauthenticated)

	// A pod that has finished is no longer placed.
	byNS, err := w.env.Clients.Kube.CoreV1().Pods(ambNS).Get(ctx, "by-ns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byNS.Status.Phase = corev1.PodSucceeded
	if _, err := w.env.Clients.Kube.CoreV1().Pods(ambNS).UpdateStatus(ctx, byNS, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, waitFor, func() string {
		if _, _, err := w.issue(t, "", nodeCert, wid(ambNS, "by-ns"), true); status.Code(err) != codes.PermissionDenied {
			return "succeeded pod still issued: " + status.Code(err).String()
		}
		return ""
	})

	// A deleted pod is no longer placed, and its proxy's token is refused.
	if err := w.env.Clients.Kube.CoreV1().Pods(appNS).Delete(ctx, "on-n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, waitFor, func() string {
		if _, _, err := w.issue(t, "", nodeCert, wid(appNS, "on-n1"), true); status.Code(err) != codes.PermissionDenied {
			return "deleted pod still issued: " + status.Code(err).String()
		}
		return ""
	})
	now := int64(0)
	if err := w.env.Clients.Kube.CoreV1().Pods(w.cpNS).Delete(ctx, proxy.Name, metav1.DeleteOptions{GracePeriodSeconds: &now}); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.issue(t, tok, nil, nodeID(n1), false)
	wantCode(t, "token of a deleted ward-node pod", err, codes.Unauthenticated)
	// A new pod of the same name (another UID) does not revive the token.
	w.pod(t, w.cpNS, proxy.Name, ca.NodeServiceAccount, n1, nil)
	_, _, err = w.issue(t, tok, nil, nodeID(n1), false)
	wantCode(t, "token of a replaced ward-node pod", err, codes.Unauthenticated)
}
