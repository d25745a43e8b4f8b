package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/ca/caclient"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/node"
	"github.com/wardmesh/ward/node/ads"
)

// TestCLINodeProxyAgainstServe runs `ward proxy-status` and `ward
// proxy-config workloads|policies|secrets` (the binary) against `ward
// serve` with a node proxy's real config client connected on the secure
// port: enrolled with a node join token, authenticated by its node
// certificate, holding one workload certificate issued as the node.
// (test/ambient.TestWardNodeADS does the same with the whole node proxy
// on real network namespaces, as root.)
func TestCLINodeProxyAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.CopyFS(cfg, os.DirFS(examplesDir(t))); err != nil {
		t.Fatal(err)
	}
	amb := "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ratings-amb, namespace: bookinfo}\n" +
		"spec:\n  address: 127.0.0.77\n  serviceAccount: ratings\n  labels: {app: ratings, istio.io/dataplane-mode: ambient, ward.io/node: n1}\n"
	if err := os.WriteFile(filepath.Join(cfg, "ambient.yaml"), []byte(amb), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	p := startWard(t, "serve", "--config", cfg, "--state", state,
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "", "--secure-addr", "127.0.0.1:0", "--authz-addr", "")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=\S+ secure_addr=(\S+)`), time.Minute)
	server, secure := "http://"+m[1], m[2]

	token, stderr, code := runWard(t, "ca", "token", "create", "--node", "n1", "--state", state)
	if code != 0 {
		t.Fatalf("ca token create: %s", stderr)
	}
	bundle, stderr, code := runWard(t, "ca", "bundle", "--state", state)
	if code != 0 {
		t.Fatalf("ca bundle: %s", stderr)
	}
	roots, err := caclient.ParseCertificates([]byte(bundle))
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	nodeID, _ := ca.NodeID(td, "ward-system", "n1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	issuer, err := node.NewRemoteCA(ctx, node.RemoteConfig{Addr: secure, NodeID: nodeID, ServerID: spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/ward"),
		Roots: roots, JoinToken: strings.TrimSpace(token)})
	if err != nil {
		t.Fatal(err)
	}
	defer issuer.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if _, err := issuer.Issue(ctx, spiffeid.RequireFromString("spiffe://cluster.local/ns/bookinfo/sa/ratings"), csr, time.Hour); err != nil {
		t.Fatalf("workload certificate as the node: %v", err)
	}

	applied := make(chan *mesh.Snapshot, 16)
	client, err := ads.New(ads.Config{Addr: secure, Creds: credentials.NewTLS(issuer.ClientTLS()), Node: "n1",
		Apply: func(_ context.Context, s *mesh.Snapshot) error { applied <- s; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case s := <-applied:
		if len(s.All(mesh.KindAuthorizationPolicy)) == 0 {
			t.Errorf("the node got no AuthorizationPolicy for its ratings workload")
		}
	case <-time.After(time.Minute):
		t.Fatal("node config never arrived")
	}

	// The last ACK reaches the server asynchronously: bounded retries.
	eventually(t, "proxy-status shows the node proxy synced", func() error {
		o, stderr, code := runWard(t, "proxy-status", "--server", server)
		if code != 0 {
			t.Fatalf("proxy-status: exit %d: %s", code, stderr)
		}
		if !strings.Contains(squeezeSpaces(o), "node~n1 node SYNCED SYNCED SYNCED SYNCED SYNCED") {
			return errNotYet
		}
		return nil
	})
	wl, stderr, code := runWard(t, "proxy-config", "workloads", "node~n1", "--server", server)
	if code != 0 || !strings.Contains(squeezeSpaces(wl), "bookinfo ratings-amb 127.0.0.77 spiffe://cluster.local/ns/bookinfo/sa/ratings STRICT") ||
		!strings.Contains(wl, "bookinfo/ratings-viewer") {
		t.Errorf("proxy-config workloads: exit %d %s\n%s", code, stderr, wl)
	}
	pol, _, code := runWard(t, "proxy-config", "policies", "node~n1", "--server", server)
	if code != 0 || !strings.Contains(squeezeSpaces(pol), "AuthorizationPolicy bookinfo ratings-viewer ALLOW") || strings.Contains(pol, "false") {
		t.Errorf("proxy-config policies (all ACKed):\n%s", pol)
	}
	var secrets []struct {
		SPIFFEID, Serial string
		Workloads        []string
	}
	js, stderr, code := runWard(t, "proxy-config", "secrets", "node~n1", "--server", server, "-o", "json")
	if code != 0 {
		t.Fatalf("proxy-config secrets: %s", stderr)
	}
	if err := json.Unmarshal([]byte(js), &secrets); err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 1 || secrets[0].Serial == "" || secrets[0].Workloads[0] != "bookinfo/ratings-amb" {
		t.Errorf("proxy-config secrets = %+v, want ratings' certificate issued to n1", secrets)
	}
	_, stderr, code = runWard(t, "proxy-config", "workloads", "node~n2", "--server", server)
	if code != 1 || !strings.Contains(stderr, "did you mean") || !strings.Contains(stderr, "node~n1") {
		t.Errorf("unknown node proxy: exit %d, stderr %q", code, stderr)
	}
}
