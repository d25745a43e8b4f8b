package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
)

// The upgrade's leader hand-off (docs/install.md): of two `ward serve
// --kube` replicas, the leader is stopped as a rolling update stops it,
// and the other keeps signing workload CSRs (pod-bound service-account
// tokens, TokenReview) before, during and after it takes the Lease — no
// request fails and the root does not change.
func TestKubeLeaderHandOffKeepsSigning(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	ctx := context.Background()
	ns := env.UniqueNamespace(t, "ward-handoff", nil)
	token := podToken(t, env)
	reps := []*kubeReplica{startKubeReplica(t, env, ns, "replica-a"), startKubeReplica(t, env, ns, "replica-b")}
	for _, r := range reps {
		r.waitServing(t)
	}
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || st == nil || len(st.Roots) != 1 {
		t.Fatalf("ward-ca secret: %+v, %v", st, err)
	}
	blk, _ := pem.Decode([]byte(st.Roots[0].CertPEM))
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var leader, follower *kubeReplica
	eventually(t, "a leader holds the lease", func() error {
		l, err := env.Clients.Kube.CoordinationV1().Leases(ns).Get(ctx, kube.DefaultLease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return fmt.Errorf("no lease holder: %v", err)
		}
		for i, r := range reps {
			if *l.Spec.HolderIdentity == r.id {
				leader, follower = r, reps[1-i]
				return nil
			}
		}
		return fmt.Errorf("lease holder %q", *l.Spec.HolderIdentity)
	})
	sign := func(r *kubeReplica) func() error {
		serverID := servingID(t, r.secureAddr, root)
		bundle := x509bundle.FromX509Authorities(serverID.TrustDomain(), []*x509.Certificate{root})
		c, err := ca.Dial(ca.ClientConfig{Addr: r.secureAddr, Bundle: func() *x509bundle.Bundle { return bundle }, ServerID: serverID, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		return func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := c.CreateCertificate(cctx, csr, time.Hour)
			return err
		}
	}
	if err := sign(leader)(); err != nil {
		t.Fatalf("the leader signs: %v", err)
	}

	// The follower signs in a loop for the whole hand-off.
	signFollower := sign(follower)
	type result struct {
		at  time.Time
		err error
	}
	results := make(chan result, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// A busy workload's pace, within the CA's per-identity limit
		// (5/s): the test is about availability, not the rate limiter.
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			results <- result{time.Now(), signFollower()}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	var all []result
	collect := func(n int, what string) {
		t.Helper()
		deadline := time.After(time.Minute)
		for got := 0; got < n; {
			select {
			case r := <-results:
				all = append(all, r)
				if r.err == nil {
					got++
				}
			case <-deadline:
				t.Fatalf("%s: %d of %d signatures within a minute", what, got, n)
			}
		}
	}
	collect(5, "before the hand-off")
	stopped := time.Now()
	if err := leader.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _ = leader.proc.cmd.Process.Wait()
	exited := time.Now()
	// It handed the Lease back on the way out (holder empty, or already
	// the follower): no 15 s lease expiry in which nobody leads.
	l, err := env.Clients.Kube.CoordinationV1().Leases(ns).Get(ctx, kube.DefaultLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := l.Spec.HolderIdentity; h != nil && *h == leader.id {
		t.Errorf("the stopped leader %s still holds the Lease", leader.id)
	}
	follower.proc.waitLine(t, regexp.MustCompile(`msg="became leader"`), 30*time.Second)
	tookOver := time.Now()
	collect(5, "after the hand-off")
	close(stop)
	wg.Wait()
	close(results)
	for r := range results {
		all = append(all, r)
	}
	var gap time.Duration
	for i, r := range all {
		if r.err != nil {
			t.Errorf("signing at %v (leader stopped at %v, follower leader at %v): %v", r.at.Format(time.StampMilli), stopped.Format(time.StampMilli), tookOver.Format(time.StampMilli), r.err)
		}
		if i > 0 && r.at.Sub(all[i-1].at) > gap {
			gap = r.at.Sub(all[i-1].at)
		}
	}
	t.Logf("%d CSRs signed by %s across the hand-off (the leader exited %v after SIGTERM, %s took the lease %v later); longest gap between signatures %v", len(all), follower.id, exited.Sub(stopped).Round(time.Millisecond), follower.id, tookOver.Sub(exited).Round(time.Millisecond), gap.Round(time.Millisecond))
	after, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || len(after.Roots) != 1 || after.Roots[0].CertPEM != st.Roots[0].CertPEM {
		t.Fatalf("the root changed across the hand-off: %v", err)
	}
}

// podToken returns a service-account token bound to a (Pending) pod, as
// the kubelet projects one for Ward's agent (audience ward-ca).
func podToken(t *testing.T, env *kubetest.Env) string {
	t.Helper()
	ctx := context.Background()
	app := env.UniqueNamespace(t, "handoff-app", nil)
	env.ServiceAccount(t, app, "web")
	pod, err := env.Clients.Kube.CoreV1().Pods(app).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := env.Clients.Kube.CoreV1().ServiceAccounts(app).CreateToken(ctx, "web", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{ca.DefaultAudience}, ExpirationSeconds: &exp,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// servingID is the SPIFFE ID in the certificate a replica serves 15012
// with.
func servingID(t *testing.T, addr string, root *x509.Certificate) spiffeid.ID {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	uris := conn.ConnectionState().PeerCertificates[0].URIs
	if len(uris) != 1 {
		t.Fatalf("serving certificate URIs %v", uris)
	}
	id, err := spiffeid.FromURI(uris[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}
