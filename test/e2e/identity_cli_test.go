package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/ca"
)

// wardOut runs the ward binary to completion and returns its stdout.
func wardOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(buildWard(t), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ward %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestIdentityCLI drives the operator and agent commands: `ward ca init`,
// `token create`, `bundle` and `rotate` on a state directory served by a CA
// (in process, as `ward serve` will run it), and the real `ward agent`
// enrolling with the token, writing its files and serving SDS, plus
// `ward agent bootstrap --envoy`.
func TestIdentityCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	wardOut(t, "ca", "init", "--state", state, "--trust-domain", "example.org")
	token := strings.TrimSpace(wardOut(t, "ca", "token", "create", "--state", state, "--ns", "shop", "--sa", "cart", "--ttl", "10m"))
	bundle := wardOut(t, "ca", "bundle", "--state", state)
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	c, err := ca.New(ca.Config{StateDir: state, TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.BundlePEM()) != bundle {
		t.Fatal("the served CA does not use the root `ward ca init` created")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)

	agentDir, out := filepath.Join(dir, "agent"), filepath.Join(dir, "out")
	p := startWard(t, "agent", "--ca-addr", lis.Addr().String(), "--trust-domain", "example.org",
		"--ca-root", write("root.pem", bundle), "--join-token-file", write("token", token),
		"--state", agentDir, "--output-dir", out, "--xds-addr", "127.0.0.1:15010", "--xds-insecure",
		"--name", "cart-0", "--ip", "10.0.0.9", "--labels", "app=cart")
	p.waitLine(t, regexp.MustCompile(`msg="certificate installed" .*spiffe_id=spiffe://example.org/ns/shop/sa/cart`), 30*time.Second)

	chain, err := os.ReadFile(filepath.Join(out, agent.FileCertChain))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(bundle))
	leaf := parseFirstCert(t, chain)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("agent's certificate does not chain to the CA: %v", err)
	}
	if got := sdsDefault(t, filepath.Join(agentDir, "var", "run", "ward", "sds.sock")); got != string(chain) {
		t.Error("SDS serves a different certificate than cert-chain.pem")
	}
	if _, _, err := c.Tokens().Check(mustToken(t, token)); err == nil {
		t.Error("the join token was not consumed")
	}

	wardOut(t, "ca", "rotate", "--state", state, "--overlap", "1h")
	if err := c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Phase() != ca.PhaseStaged || len(c.Roots()) != 2 {
		t.Fatalf("after `ward ca rotate`: phase %s, %d roots", c.Phase(), len(c.Roots()))
	}

	var b bootstrapv3.Bootstrap
	envoy := wardOut(t, "agent", "bootstrap", "--envoy", "--trust-domain", "example.org", "--ns", "shop", "--sa", "cart",
		"--xds-addr", "127.0.0.1:15012", "--state", agentDir)
	if err := protojson.Unmarshal([]byte(envoy), &b); err != nil {
		t.Fatalf("envoy bootstrap: %v\n%s", err, envoy)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("envoy bootstrap invalid: %v", err)
	}
}

func parseFirstCert(t *testing.T, pemb []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(pemb)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustToken(t *testing.T, s string) ca.JoinToken {
	t.Helper()
	tok, err := ca.ParseJoinToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sdsDefault fetches the "default" secret's chain from an SDS socket.
func sdsDefault(t *testing.T, socket string) string {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "sidecar~10.0.0.9~cart-0.shop~shop.svc.cluster.local"},
		TypeUrl: resourcev3.SecretType, ResourceNames: []string{"default"}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatalf("sds: %v", err)
	}
	var sec tlsv3.Secret
	if err := r.Resources[0].UnmarshalTo(&sec); err != nil {
		t.Fatal(err)
	}
	return string(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
}
