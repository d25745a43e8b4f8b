// Package kubetest starts the real Kubernetes control plane of
// hack/kube-env.sh (etcd + kube-apiserver on loopback, built once and
// cached) for a package's tests: one per package run, from TestMain.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/kube"
)

// Env is a running API server.
type Env struct {
	Dir        string
	Kubeconfig string
	Clients    *kube.Clients
	Root       string // repository root
}

var (
	once    sync.Once
	current *Env
	err     error
	enabled bool
)

// Main runs the tests; the first test that calls Require starts the
// control plane (so packages whose selected tests need none pay nothing),
// and Main stops it after the last test. With -short nothing starts and
// Require skips. Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
func Main(m *testing.M) int {
	flag.Parse()
	enabled = !testing.Short()
	code := m.Run()
	if current != nil {
		current.stop()
	}
	return code
}

// Require returns the package's API server, starting it on first use, and
// skips the test with -short.
func Require(t testing.TB) *Env {
	t.Helper()
	if !enabled {
		t.Skip("needs a kube-apiserver (skipped with -short; TestMain must call kubetest.Main)")
	}
	once.Do(func() { current, err = start() })
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return current
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func start() (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ward-kube-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "kube-env.sh"), "up", dir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("KUBE_ENV_PARENT=%d", os.Getpid()))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/kube-env.sh up: %w\n%s", err, stderr.String())
	}
	env := &Env{Dir: dir, Root: root}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == "KUBECONFIG" {
			env.Kubeconfig = v
		}
	}
	if env.Kubeconfig == "" {
		env.stop()
		return nil, fmt.Errorf("hack/kube-env.sh printed no KUBECONFIG:\n%s", out)
	}
	if env.Clients, err = kube.NewClients(env.Kubeconfig); err != nil {
		env.stop()
		return nil, err
	}
	return env, nil
}

func (e *Env) stop() {
	_ = exec.Command("bash", filepath.Join(e.Root, "hack", "kube-env.sh"), "down", e.Dir).Run()
	_ = os.RemoveAll(e.Dir)
}

// Kubectl runs kubectl against the environment, failing the test on error.
func (e *Env) Kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := e.KubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// KubectlErr runs kubectl and returns its combined output.
func (e *Env) KubectlErr(stdin string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ApplyCRDs installs deploy/crds.yaml and waits until they are served.
func (e *Env) ApplyCRDs(t testing.TB) {
	t.Helper()
	e.Kubectl(t, "", "apply", "-f", filepath.Join(e.Root, "deploy", "crds.yaml"))
	e.Kubectl(t, "", "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=ward")
}

// Namespace creates a namespace with labels and its "default"
// ServiceAccount (no controller manager creates it here).
func (e *Env) Namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	_, err := e.Clients.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	e.ServiceAccount(t, name, "default")
}

// ServiceAccount creates a service account.
func (e *Env) ServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	_, err := e.Clients.Kube.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
}

// Eventually polls cond every 20 ms until it returns "" or timeout passes,
// then fails with the last message. It is a bounded wait for the informers
// and controllers under test, which have no hook to wait on.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for time.Now().Before(deadline) {
		if msg = cond(); msg == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", timeout, msg)
}

// InstallWebhooks creates deploy/webhooks.yaml with every service
// reference replaced by the URL base + path (a webhook on loopback),
// removing the configurations when the test ends. caBundle stays empty for
// Ward's CABundleSync to fill.
func (e *Env) InstallWebhooks(t testing.TB, base string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.Root, "deploy", "webhooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &m); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &v); err != nil {
		t.Fatal(err)
	}
	url := func(cc *admissionregistrationv1.WebhookClientConfig) {
		u := base + *cc.Service.Path
		cc.URL, cc.Service = &u, nil
	}
	for i := range m.Webhooks {
		url(&m.Webhooks[i].ClientConfig)
	}
	for i := range v.Webhooks {
		url(&v.Webhooks[i].ClientConfig)
	}
	api := e.Clients.Kube.AdmissionregistrationV1()
	ctx := context.Background()
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, &m, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, &v, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = api.MutatingWebhookConfigurations().Delete(ctx, m.Name, metav1.DeleteOptions{})
		_ = api.ValidatingWebhookConfigurations().Delete(ctx, v.Name, metav1.DeleteOptions{})
	})
}

// WaitCABundle waits until both of Ward's webhook configurations carry a
// caBundle.
func (e *Env) WaitCABundle(t testing.TB, timeout time.Duration) {
	t.Helper()
	api := e.Clients.Kube.AdmissionregistrationV1()
	ctx := context.Background()
	Eventually(t, timeout, func() string {
		m, err := api.MutatingWebhookConfigurations().Get(ctx, "ward-sidecar-injector", metav1.GetOptions{})
		if err != nil || len(m.Webhooks[0].ClientConfig.CABundle) == 0 {
			return "mutating caBundle not filled"
		}
		v, err := api.ValidatingWebhookConfigurations().Get(ctx, "ward-validator", metav1.GetOptions{})
		if err != nil || len(v.Webhooks[0].ClientConfig.CABundle) == 0 {
			return "validating caBundle not filled"
		}
		return ""
	})
}
