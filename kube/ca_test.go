package kube_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
)

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type replica struct {
	leader *kube.Leader
	ca     *ca.CA
	stop   context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, env *kubetest.Env, ns, id string, log *slog.Logger) *replica {
	t.Helper()
	l, err := kube.NewLeader(kube.LeaderConfig{
		Client: env.Clients.Kube, Namespace: ns, Identity: id, Log: log,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{leader: l, stop: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func caConfig(t *testing.T, log *slog.Logger) ca.Config {
	return ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Log: log, ServerNames: []string{"127.0.0.1"}}
}

func TestCAStateCreatedOnceUnderLeaderElectionAndHandedOver(t *testing.T) {
	env := kubetest.Require(t)
	env.Namespace(t, "ward-le", nil)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	store := kube.SecretStore{Client: env.Clients.Kube, Namespace: "ward-le"}
	reps := []*replica{startReplica(t, env, "ward-le", "r1", log), startReplica(t, env, "ward-le", "r2", log)}
	var wg sync.WaitGroup
	errs := make([]error, len(reps))
	for i, r := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			r.ca, errs[i] = kube.NewCA(ctx, store, r.leader, caConfig(t, log))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if n := strings.Count(logs.String(), "created root CA"); n != 1 {
		t.Fatalf("root created %d times, want once; logs:\n%s", n, logs.String())
	}
	r0, r1 := reps[0].ca.Roots(), reps[1].ca.Roots()
	if len(r0) != 1 || len(r1) != 1 || !r0[0].Equal(r1[0]) {
		t.Fatalf("replicas disagree on the root: %d and %d roots", len(r0), len(r1))
	}
	st, err := store.Load(context.Background())
	if err != nil || st == nil || len(st.Roots) != 1 {
		t.Fatalf("secret state = %+v, %v", st, err)
	}
	// Both sign, chaining to the one root.
	for i, r := range reps {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		iss, err := r.ca.Sign(ca.Params{ID: r.ca.ServerID(), PublicKey: key.Public(), TTL: time.Hour, Method: ca.MethodControlPlane})
		if err != nil {
			t.Fatalf("replica %d sign: %v", i, err)
		}
		if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: pool(r0[0]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("replica %d leaf does not chain to the shared root: %v", i, err)
		}
	}

	var leader, follower *replica
	for _, r := range reps {
		if r.leader.IsLeader() {
			leader = r
		} else {
			follower = r
		}
	}
	if leader == nil || follower == nil {
		t.Fatal("want exactly one leader")
	}
	leader.stop() // the leader dies; it releases the lease on the way out
	<-leader.done
	select {
	case <-follower.leader.Elected():
	case <-time.After(waitFor):
		t.Fatal("the follower did not take over the lease")
	}
	// A replica started later loads the same state and creates nothing.
	later := startReplica(t, env, "ward-le", "r3", log)
	c, err := kube.NewCA(context.Background(), store, later.leader, caConfig(t, log))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Roots()[0].Equal(r0[0]) || strings.Count(logs.String(), "created root CA") != 1 {
		t.Fatal("a new replica did not load the existing root")
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestTrustBundleConfigMapsFollowNamespacesAndRotation(t *testing.T) {
	env := kubetest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env.Namespace(t, "ward-tb", nil)
	c, err := ca.New(func() ca.Config {
		cfg := caConfig(t, slog.New(slog.DiscardHandler))
		cfg.Store = kube.SecretStore{Client: env.Clients.Kube, Namespace: "ward-tb", Name: "ward-ca-tb"}
		return cfg
	}())
	if err != nil {
		t.Fatal(err)
	}
	bs, err := kube.NewBundleSync(kube.BundleConfig{Client: env.Clients.Kube, Bundle: c.BundlePEM, Changed: c.Changed})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = bs.Run(ctx) }()
	defer func() { cancel(); <-done }()

	env.Namespace(t, "tb-new", nil)
	bundleIn := func(ns string, want []byte) func() string {
		return func() string {
			cm, err := env.Clients.Kube.CoreV1().ConfigMaps(ns).Get(ctx, kube.TrustBundleConfigMap, metav1.GetOptions{})
			if err != nil {
				return err.Error()
			}
			if cm.Data[kube.TrustBundleKey] != string(want) {
				return "configmap in " + ns + " holds another bundle"
			}
			return ""
		}
	}
	before := c.BundlePEM()
	kubetest.Eventually(t, waitFor, bundleIn("tb-new", before))
	kubetest.Eventually(t, waitFor, bundleIn("default", before))

	if err := c.Rotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	after := c.BundlePEM()
	if bytes.Equal(before, after) {
		t.Fatal("rotation did not change the bundle")
	}
	kubetest.Eventually(t, waitFor, bundleIn("tb-new", after))
	kubetest.Eventually(t, waitFor, bundleIn("default", after))
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: "ward-tb", Name: "ward-ca-tb"}.Load(ctx)
	if err != nil || len(st.Roots) != 2 {
		t.Fatalf("rotation not persisted in the secret: %+v, %v", st, err)
	}

	// A deleted ConfigMap comes back.
	if err := env.Clients.Kube.CoreV1().ConfigMaps("tb-new").Delete(ctx, kube.TrustBundleConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, waitFor, bundleIn("tb-new", after))
}

// caService serves c's certificate service on loopback.
func caService(t *testing.T, c *ca.CA) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func requestCert(t *testing.T, c *ca.CA, addr, token, id string) ([]string, error) {
	t.Helper()
	cl, err := ca.Dial(ca.ClientConfig{
		Addr: addr, ServerID: c.ServerID(), Token: token,
		Bundle: func() *x509bundle.Bundle { return x509bundle.FromX509Authorities(c.TrustDomain(), c.Roots()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return cl.CreateCertificate(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
}

func TestTokenReviewAuthenticatesPodBoundServiceAccountTokens(t *testing.T) {
	env := kubetest.Require(t)
	ctx := context.Background()
	env.Namespace(t, "tr1", nil)
	env.ServiceAccount(t, "tr1", "app")
	env.ServiceAccount(t, "tr1", "other")
	pod, err := env.Clients.Kube.CoreV1().Pods("tr1").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app-1"},
		Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := caConfig(t, slog.New(slog.DiscardHandler))
	cfg.TokenReviewer = kube.TokenReviewer{Client: env.Clients.Kube}
	c, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := caService(t, c)
	const appID, otherID = "spiffe://cluster.local/ns/tr1/sa/app", "spiffe://cluster.local/ns/tr1/sa/other"
	token := func(sa, aud string, bound bool) string {
		args := []string{"-n", "tr1", "create", "token", sa, "--audience", aud}
		if bound {
			args = append(args, "--bound-object-kind", "Pod", "--bound-object-name", "app-1", "--bound-object-uid", string(pod.UID))
		}
		return strings.TrimSpace(env.Kubectl(t, "", args...))
	}
	good := token("app", "ward-ca", true)

	chain, err := requestCert(t, c, addr, good, appID)
	if err != nil {
		t.Fatalf("pod-bound token for tr1/app: %v", err)
	}
	leaf, _ := pem.Decode([]byte(chain[0]))
	cert, err := x509.ParseCertificate(leaf.Bytes)
	if err != nil || len(cert.URIs) != 1 || cert.URIs[0].String() != appID {
		t.Fatalf("issued certificate %v (err %v), want URI %s", cert.URIs, err, appID)
	}

	resigned, expired := forgeTokens(t, env, good)
	for name, tc := range map[string]struct{ token, id string }{
		"another identity in the csr": {good, otherID},
		"foreign audience":            {token("app", "not-ward", true), appID},
		"not bound to a pod":          {token("app", "ward-ca", false), appID},
		"expired":                     {expired, appID},
	} {
		if _, err := requestCert(t, c, addr, tc.token, tc.id); err == nil {
			t.Errorf("%s: certificate issued, want refusal", name)
		}
	}
	// The refusal of an unbound token is Ward's pod check, not the API
	// server's.
	tr, err := kube.TokenReviewer{Client: env.Clients.Kube}.Review(ctx, token("app", "ward-ca", false), []string{"ward-ca"})
	if err != nil || tr.Status.Authenticated || !strings.Contains(tr.Status.Error, "not bound to a pod") {
		t.Errorf("unbound token review = %+v, %v; want refused as not bound to a pod", tr.Status, err)
	}
	// The forging is sound: the same claims, re-signed unexpired, pass.
	if _, err := requestCert(t, c, addr, resigned, appID); err != nil {
		t.Fatalf("re-signed unexpired token refused (the expired case proves nothing): %v", err)
	}

	// Once the pod is gone, its token no longer enrols.
	if err := env.Clients.Kube.CoreV1().Pods("tr1").Delete(ctx, "app-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, waitFor, func() string {
		if _, err := requestCert(t, c, addr, good, appID); err == nil {
			return "token of a deleted pod still enrols"
		}
		return ""
	})
}

// forgeTokens re-signs a real token's claims with the API server's
// service-account key: once unchanged, once expired an hour ago.
func forgeTokens(t *testing.T, env *kubetest.Env, real string) (resigned, expired string) {
	t.Helper()
	parts := strings.Split(real, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(env.Dir, "pki", "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims map[string]any) string {
		p, _ := json.Marshal(claims)
		in := parts[0] + "." + base64.RawURLEncoding.EncodeToString(p)
		h := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.(*rsa.PrivateKey), crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	resigned = sign(claims)
	now := time.Now()
	claims["iat"], claims["nbf"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	return resigned, sign(claims)
}
