package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
	"github.com/wardmesh/ward/node/ads"
	"github.com/wardmesh/ward/xds/ambient"
)

// `ward serve --kube` issues node proxies' certificates: the node
// proxy's own issuer (node.RemoteCA, what `ward node --token-file` runs)
// enrols with the pod-bound token of a <control-plane namespace>/ward-node pod on n1 and
// then gets the certificate of an ambient pod on n1, not of one on n2,
// and over ADS learns that pod (ward.io/node from spec.nodeName) only.
func TestKubeServeIssuesNodeProxyCertificates(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	ctx := context.Background()
	ns := env.UniqueNamespace(t, "ward-amb", nil)
	cpNS := ns // the control plane's identity namespace follows --kube-namespace
	env.ServiceAccount(t, cpNS, ca.NodeServiceAccount)
	n1, n2 := ns+"-n1", ns+"-n2"
	for _, n := range []string{n1, n2} {
		if _, err := env.Clients.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Clients.Kube.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	pod := func(ns, name, sa, node string, labels map[string]string) *corev1.Pod {
		env.ServiceAccount(t, ns, sa)
		p, err := env.Clients.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "c"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := int64(0)
		t.Cleanup(func() {
			_ = env.Clients.Kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &now})
		})
		return p
	}
	proxy := pod(cpNS, ns+"-node", ca.NodeServiceAccount, n1, nil)
	appNS := env.UniqueNamespace(t, "amb-app", map[string]string{kube.LabelDataplaneMode: kube.DataplaneAmbient})
	// No kubelet runs: the pods get their address and phase by hand.
	for i, p := range []*corev1.Pod{pod(appNS, "a", "a", n1, nil), pod(appNS, "b", "b", n2, nil)} {
		p.Status.Phase, p.Status.PodIP = corev1.PodRunning, fmt.Sprintf("10.1.0.%d", i+1)
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		if _, err := env.Clients.Kube.CoreV1().Pods(appNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	r := startKubeReplica(t, env, ns, "replica-a")
	r.waitServing(t)
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || st == nil || len(st.Roots) != 1 {
		t.Fatalf("ward-ca secret: %+v, %v", st, err)
	}
	blk, _ := pem.Decode([]byte(st.Roots[0].CertPEM))
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := env.Clients.Kube.CoreV1().ServiceAccounts(cpNS).CreateToken(ctx, ca.NodeServiceAccount, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{ca.DefaultAudience}, ExpirationSeconds: &exp,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: proxy.Name, UID: proxy.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	nodeID, err := ca.NodeID(td, cpNS, n1)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := mesh.Identity{TrustDomain: td.Name(), Namespace: cpNS, ServiceAccount: "ward"}.SPIFFEID()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rca, err := node.NewRemoteCA(rctx, node.RemoteConfig{Addr: r.secureAddr, NodeID: nodeID, ServerID: server,
		Roots: []*x509.Certificate{root}, JoinToken: tr.Status.Token})
	if err != nil {
		t.Fatalf("node proxy enrolment with its pod-bound token: %v", err)
	}
	defer rca.Close()
	if got := rca.NodeCertificate().URIs; len(got) != 1 || got[0].String() != nodeID.String() {
		t.Fatalf("node certificate for %v, want %s", got, nodeID)
	}
	issue := func(sa string) error {
		id, _ := mesh.Identity{TrustDomain: td.Name(), Namespace: appNS, ServiceAccount: sa}.SPIFFEID()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(id.String())
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := rca.Issue(rctx, id, der, time.Hour)
		if err != nil {
			return err
		}
		certs, _, err := ca.SplitChain(chain)
		if err != nil || certs[0].URIs[0].String() != id.String() {
			return fmt.Errorf("issued %v (%v), want %s", certs, err, id)
		}
		return nil
	}
	eventually(t, "certificate of the ambient pod on "+n1, func() error { return issue("a") })
	if err := issue("b"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ambient pod on %s: %v, want PermissionDenied", n2, err)
	}
	r.proc.waitLine(t, regexp.MustCompile(regexp.QuoteMeta("is scheduled on node "+n1)), 10*time.Second)

	// Over ADS with the node certificate, the node learns its pods: a
	// (spec.nodeName n1), not b.
	snaps := make(chan *mesh.Snapshot, 16)
	cl, err := ads.New(ads.Config{Addr: r.secureAddr, Creds: credentials.NewTLS(rca.ClientTLS()), Node: n1,
		Apply: func(_ context.Context, s *mesh.Snapshot) error {
			select {
			case snaps <- s:
			default:
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cl.Run(actx) }()
	defer func() { stop(); <-done }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-snaps:
			var local []string
			for _, w := range ambient.Local(s, n1) {
				local = append(local, w.Namespace+"/"+w.Name)
			}
			if strings.Join(local, ",") == appNS+"/pod.a" { // a pod's WorkloadEntry
				return
			}
			t.Logf("node %s's workloads over ADS: %v (waiting for %s/pod.a only)", n1, local, appNS)
		case <-deadline:
			t.Fatalf("node %s never got exactly its ambient pod %s/pod.a over ADS", n1, appNS)
		}
	}
}
