package webhook_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube/kubetest"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/webhook"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const waitFor = 30 * time.Second

// startWebhook runs Ward's webhook on loopback with a serving certificate
// from a fresh CA, installs deploy/webhooks.yaml pointed at it, and lets
// CABundleSync fill the caBundle: the API server then calls it over TLS.
func startWebhook(t *testing.T, env *kubetest.Env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", ServerNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := webhook.New(webhook.Config{Listener: lis, GetCertificate: webhook.FromCA(c), Client: env.Clients.Kube, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sync, err := webhook.NewCABundleSync(webhook.CABundleConfig{Client: env.Clients.Kube, Bundle: c.BundlePEM, Changed: c.Changed, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = srv.Run(ctx); done <- struct{}{} }()
	go func() { _ = sync.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	env.InstallWebhooks(t, "https://"+lis.Addr().String())
	env.WaitCABundle(t, waitFor)
}

func createPod(t *testing.T, env *kubetest.Env, ns, name string, labels map[string]string, hostNetwork bool) *corev1.Pod {
	t.Helper()
	p, err := env.Clients.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return p
}

func containerNames(cs []corev1.Container) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

// TestAPIServerCallsWebhooks shares one webhook across subtests: the
// configurations are cluster-wide.
func TestAPIServerCallsWebhooks(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	startWebhook(t, env)
	env.Namespace(t, "inj", map[string]string{webhook.LabelInjectNamespace: "enabled"})
	env.Namespace(t, "plain", nil)
	env.Namespace(t, "rev", map[string]string{webhook.LabelRevision: "default"})
	env.Namespace(t, "otherrev", map[string]string{webhook.LabelRevision: "canary"})

	t.Run("injects in a labelled namespace", func(t *testing.T) {
		p := createPod(t, env, "inj", "web", map[string]string{"app": "web"}, false)
		if got := containerNames(p.Spec.Containers); got != "app,ward-agent,ward-proxy" {
			t.Errorf("containers = %s", got)
		}
		if got := containerNames(p.Spec.InitContainers); got != "ward-bootstrap,ward-init" {
			t.Errorf("init containers = %s", got)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range p.Spec.Volumes {
			vols[v.Name] = v
		}
		tok := vols[webhook.VolumeToken].Projected
		if tok == nil || tok.Sources[0].ServiceAccountToken.Audience != "ward-ca" || *tok.Sources[0].ServiceAccountToken.ExpirationSeconds != 43200 {
			t.Errorf("token volume = %+v", vols[webhook.VolumeToken])
		}
		if cm := vols[webhook.VolumeRootCert].ConfigMap; cm == nil || cm.Name != "ward-ca-root-cert" {
			t.Errorf("root cert volume = %+v", vols[webhook.VolumeRootCert])
		}
		apiVol := false
		for n := range vols {
			apiVol = apiVol || strings.HasPrefix(n, "kube-api-access-")
		}
		if !apiVol {
			t.Errorf("the ServiceAccount plugin's volume was lost: %v", vols)
		}
		if p.Labels[mesh.LabelTLSMode] != "istio" || p.Labels["app"] != "web" || p.Annotations[webhook.AnnotationStatus] == "" {
			t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
		}
	})
	t.Run("opt-out label", func(t *testing.T) {
		p := createPod(t, env, "inj", "optout", map[string]string{webhook.LabelInject: "false"}, false)
		if got := containerNames(p.Spec.Containers); got != "app" {
			t.Errorf("containers = %s", got)
		}
	})
	t.Run("hostNetwork never", func(t *testing.T) {
		p := createPod(t, env, "inj", "hostnet", nil, true)
		if got := containerNames(p.Spec.Containers); got != "app" {
			t.Errorf("containers = %s", got)
		}
	})
	t.Run("unlabelled namespace only with the pod label", func(t *testing.T) {
		if got := containerNames(createPod(t, env, "plain", "a", nil, false).Spec.Containers); got != "app" {
			t.Errorf("containers = %s", got)
		}
		p := createPod(t, env, "plain", "b", map[string]string{webhook.LabelInject: "true"}, false)
		if got := containerNames(p.Spec.Containers); got != "app,ward-agent,ward-proxy" {
			t.Errorf("containers = %s", got)
		}
	})
	t.Run("revisions", func(t *testing.T) {
		if got := containerNames(createPod(t, env, "rev", "a", nil, false).Spec.Containers); got != "app,ward-agent,ward-proxy" {
			t.Errorf("our revision: containers = %s", got)
		}
		if got := containerNames(createPod(t, env, "otherrev", "a", nil, false).Spec.Containers); got != "app" {
			t.Errorf("another revision: containers = %s", got)
		}
	})
	t.Run("validation refuses invalid objects with field paths", func(t *testing.T) {
		bad := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: plain}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [GET], ports: ["80", "http"]}}]
  - to: [{operation: {ports: ["x"]}}]
`
		out, err := env.KubectlErr(bad, "apply", "-f", "-")
		if err == nil {
			t.Fatalf("invalid policy accepted: %s", out)
		}
		for _, want := range []string{
			`admission webhook "validation.wardmesh.io" denied the request: AuthorizationPolicy plain/bad: 2 errors:`,
			"\n  spec.rules[0].to[0].operation.ports[1]: invalid port \"http\"",
			"\n  spec.rules[1].to[0].operation.ports[0]: invalid port \"x\"",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl output lacks %q:\n%s", want, out)
			}
		}
		typo := strings.Replace(bad, `ports: ["x"]`, "method: [GET]", 1)
		out, err = env.KubectlErr(typo, "apply", "-f", "-")
		if err == nil || !strings.Contains(out, `spec.rules[1].to[0].operation.method: unknown field "method" (did you mean "methods"?)`) {
			t.Errorf("unknown field: err %v, output:\n%s", err, out)
		}
		good := strings.NewReplacer(`"http"`, `"8080"`, `"x"`, `"9090"`).Replace(bad)
		if out, err := env.KubectlErr(good, "apply", "-f", "-"); err != nil {
			t.Errorf("valid policy refused: %v\n%s", err, out)
		}
		// Updates are validated too; status writes are not.
		if out, err := env.KubectlErr(bad, "apply", "-f", "-"); err == nil {
			t.Errorf("invalid update accepted: %s", out)
		}
	})
}
