package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/kube/kubetest"
)

type kubeReplica struct {
	id                              string
	proc                            *wardProc
	debugAddr, secureAddr, rootLine string
}

func startKubeReplica(t *testing.T, env *kubetest.Env, ns, id string) *kubeReplica {
	t.Helper()
	dir := t.TempDir()
	p := startWard(t, "serve", "--kube", "--kubeconfig", env.Kubeconfig, "--kube-namespace", ns, "--kube-identity", id,
		"--config", "", "--state", filepath.Join(dir, "state"), "--server-name", "127.0.0.1",
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--webhook-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0")
	return &kubeReplica{id: id, proc: p}
}

// waitServing reads the replica's log up to "ward serving": whether it
// created or loaded the root, and its addresses.
func (r *kubeReplica) waitServing(t *testing.T) {
	t.Helper()
	r.rootLine = r.proc.waitLine(t, regexp.MustCompile(`msg="(created|loaded) root CA"`), time.Minute)[1]
	m := r.proc.waitLine(t, regexp.MustCompile(`msg="ward serving".* debug_addr=(\S+) .*secure_addr=(\S+)`), 30*time.Second)
	r.debugAddr, r.secureAddr = m[1], m[2]
}

// Two `ward serve --kube` replicas: one creates the CA Secret under the
// Lease, both serve with the same root, and killing the leader hands the
// Lease (and the trust-bundle writing) to the other.
func TestKubeTwoReplicasShareOneRootAndHandOver(t *testing.T) {
	env := kubetest.Require(t)
	env.ApplyCRDs(t)
	ns := env.UniqueNamespace(t, "ward-ha", nil)
	reps := []*kubeReplica{startKubeReplica(t, env, ns, "replica-a"), startKubeReplica(t, env, ns, "replica-b")}
	created := 0
	for _, r := range reps {
		r.waitServing(t)
		if r.rootLine == "created" {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d replicas created a root, want exactly 1", created)
	}
	ctx := context.Background()
	st, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || st == nil || len(st.Roots) != 1 {
		t.Fatalf("ward-ca secret: %+v, %v", st, err)
	}
	blk, _ := pem.Decode([]byte(st.Roots[0].CertPEM))
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	for _, r := range reps {
		// Both serve the CA and xDS port with a certificate from that root.
		conn, err := tls.Dial("tcp", r.secureAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("%s: TLS to %s with the Secret's root: %v", r.id, r.secureAddr, err)
		}
		conn.Close()
		eventually(t, r.id+" ready", func() error {
			resp, err := http.Get("http://" + r.debugAddr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("readyz: %s", resp.Status)
			}
			return nil
		})
	}
	holder := func() string {
		l, err := env.Clients.Kube.CoordinationV1().Leases(ns).Get(ctx, kube.DefaultLease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader, follower *kubeReplica
	eventually(t, "a leader holds the lease", func() error {
		for i, r := range reps {
			if holder() == r.id {
				leader, follower = r, reps[1-i]
				return nil
			}
		}
		return fmt.Errorf("lease holder %q", holder())
	})
	bundleIn := func(namespace string) error {
		cm, err := env.Clients.Kube.CoreV1().ConfigMaps(namespace).Get(ctx, kube.TrustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !strings.Contains(cm.Data[kube.TrustBundleKey], strings.TrimSpace(st.Roots[0].CertPEM)) {
			return fmt.Errorf("configmap in %s lacks the root", namespace)
		}
		return nil
	}
	eventually(t, "trust bundle in "+ns, func() error { return bundleIn(ns) })

	// The leader dies (SIGTERM: it releases the lease on the way out).
	if err := leader.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _ = leader.proc.cmd.Process.Wait()
	follower.proc.waitLine(t, regexp.MustCompile(`msg="became leader"`), 30*time.Second)
	if h := holder(); h != follower.id {
		t.Fatalf("lease holder %q after the leader died, want %q", h, follower.id)
	}
	// The new leader keeps the trust bundle in new namespaces.
	fresh := env.UniqueNamespace(t, "ha-new", nil)
	eventually(t, "trust bundle in a namespace created after the handover", func() error { return bundleIn(fresh) })
	after, err := kube.SecretStore{Client: env.Clients.Kube, Namespace: ns}.Load(ctx)
	if err != nil || len(after.Roots) != 1 || after.Roots[0].CertPEM != st.Roots[0].CertPEM {
		t.Fatalf("the root changed across the handover: %+v, %v", after, err)
	}
}
