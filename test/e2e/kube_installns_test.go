package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/webhook"
)

// Ward installed into a namespace other than ward-system works end to
// end (issue #18): `ward install -n mesh-ctl-N` points the webhooks'
// service at mesh-ctl-N, a `ward serve --kube --kube-namespace
// mesh-ctl-N` fills their caBundle, serves a certificate for
// ward.mesh-ctl-N.svc with the identity .../ns/mesh-ctl-N/sa/ward, and
// its injector gives pods an agent that reaches and pins that control
// plane.
func TestKubeInstallIntoOtherNamespace(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	ns := fmt.Sprintf("mesh-ctl-%d", time.Now().UnixNano()%1e6)
	base := []string{"--kubeconfig", env.Kubeconfig, "-n", ns}
	// Registered first, so it runs after the serve process has stopped.
	t.Cleanup(func() { runWard(t, append([]string{"uninstall", "--wait", "0"}, base...)...) })
	if out, stderr, code := runWard(t, append([]string{"install", "--wait", "0"}, base...)...); code != 0 {
		t.Fatalf("ward install -n %s: exit %d\n%s%s", ns, code, out, stderr)
	}

	port := freePort(t)
	p := startWard(t, "serve", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", ns, "--kube-identity", "mesh-ctl",
		"--config", "", "--state", filepath.Join(t.TempDir(), "state"), "--server-name", "127.0.0.1",
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0",
		"--webhook-addr", fmt.Sprintf("127.0.0.1:%d", port))
	r := &kubeReplica{id: "mesh-ctl", proc: p}
	r.waitServing(t)
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || st == nil || len(st.Roots) != 1 {
		t.Fatalf("ward-ca secret in %s: %+v, %v", ns, st, err)
	}
	rootPEM := []byte(st.Roots[0].CertPEM)

	// The installed webhook configurations name the Service in ns, and
	// Ward keeps their caBundle.
	env.WaitCABundle(t, waitForKube)
	api := env.Clients.Kube.AdmissionregistrationV1()
	m, err := api.MutatingWebhookConfigurations().Get(ctx, webhook.MutatingConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.ValidatingWebhookConfigurations().Get(ctx, webhook.ValidatingConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ccs []admissionregistrationv1.WebhookClientConfig
	for _, w := range m.Webhooks {
		ccs = append(ccs, w.ClientConfig)
	}
	for _, w := range v.Webhooks {
		ccs = append(ccs, w.ClientConfig)
	}
	for i, cc := range ccs {
		if s := cc.Service; s == nil || s.Namespace != ns || s.Name != "ward" {
			t.Errorf("webhook %d: service %+v, want ward in %s", i, s, ns)
		}
		if !bytes.Contains(cc.CABundle, rootPEM) {
			t.Errorf("webhook %d: caBundle lacks the root of ward-ca in %s", i, ns)
		}
	}

	// The serving certificate covers the Service's names in ns and names
	// the control plane there.
	cert := servingCert(t, r.secureAddr, rootPEM)
	for _, want := range []string{"ward." + ns + ".svc", "ward." + ns + ".svc.cluster.local"} {
		if !slices.Contains(cert.DNSNames, want) {
			t.Errorf("serving certificate DNS names %q lack %s", cert.DNSNames, want)
		}
	}
	serverID := "spiffe://cluster.local/ns/" + ns + "/sa/ward"
	if len(cert.URIs) != 1 || cert.URIs[0].String() != serverID {
		t.Errorf("serving certificate URIs %v, want %s", cert.URIs, serverID)
	}

	// This API server has no endpoints or cluster DNS to reach a Service,
	// so the injector's clientConfig is pointed at the process on
	// loopback; the caBundle Ward wrote stays.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := api.MutatingWebhookConfigurations().Get(ctx, webhook.MutatingConfigName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i := range m.Webhooks {
			cc := &m.Webhooks[i].ClientConfig
			u := fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path)
			cc.URL, cc.Service = &u, nil
		}
		_, err = api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	app := env.UniqueNamespace(t, "mesh-ctl-app", map[string]string{"istio-injection": "enabled"})
	env.Kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: %s}
spec:
  containers: [{name: app, image: web:1}]
`, app), "apply", "-f", "-")
	pod, err := env.Clients.Kube.CoreV1().Pods(app).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	agent := container(pod, webhook.ContainerAgent)
	if agent == nil {
		t.Fatalf("pod not injected: containers %v", pod.Spec.Containers)
	}
	for flag, want := range map[string]string{
		"--ca-addr":      "ward." + ns + ".svc:15012",
		"--xds-addr":     "ward." + ns + ".svc:15012",
		"--ca-server-id": serverID,
	} {
		if got := flagValue(agent.Args, flag); got != want {
			t.Errorf("injected agent %s %q, want %q (args %q)", flag, got, want, agent.Args)
		}
	}
}

// servingCert is the leaf certificate served on addr, verified against
// the root.
func servingCert(t *testing.T, addr string, rootPEM []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(rootPEM)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func container(p *corev1.Pod, name string) *corev1.Container {
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == name {
			return &p.Spec.Containers[i]
		}
	}
	return nil
}

// flagValue is the value after flag in args ("" when absent).
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
