package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/sds"
)

// enrolled is a real workload identity: a CA on loopback, an agent that
// enrolled with it, serving SDS on a Unix socket and writing the
// proxyless files.
type enrolled struct {
	socket, certDir string
	svid            *agent.SVID
}

func enrol(t *testing.T) enrolled {
	t.Helper()
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(c.ServerTLSConfig())))
	c.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)

	srv, err := sds.NewServer(sds.Config{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	e := enrolled{socket: filepath.Join(t.TempDir(), "sds.sock"), certDir: t.TempDir()}
	serveSDS(t, srv, e.socket)
	tok, err := c.Tokens().Create("shop", "cart", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{CAAddr: lis.Addr().String(), TrustDomain: "example.org", CABundlePEM: c.BundlePEM(),
		JoinToken: tok.String(), SDS: srv, OutputDir: e.certDir})
	if err != nil {
		t.Fatal(err)
	}
	changed := a.Changed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not enrol within 20s")
	}
	e.svid = a.Current()
	return e
}

// serveSDS serves srv on a Unix socket at path until the test ends.
func serveSDS(t *testing.T, srv *sds.Server, path string) {
	t.Helper()
	lis, err := sds.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sds: %v", err)
		}
	})
}

// assertNoKey fails when out holds the private key, its PEM label or any
// 16-character run of its base64 encoding.
func assertNoKey(t *testing.T, what, out string, keyPEM []byte) {
	t.Helper()
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("%s prints a PRIVATE KEY block:\n%s", what, out)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatal("agent key is not PEM")
	}
	b64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	for i := 0; i+16 <= len(b64); i += 8 {
		if strings.Contains(out, b64[i:i+16]) {
			t.Fatalf("%s contains key material %q", what, b64[i:i+16])
		}
	}
	if bytes.Contains([]byte(out), blk.Bytes[len(blk.Bytes)-32:]) {
		t.Fatalf("%s contains raw key bytes", what)
	}
}

func TestProxyConfigSecrets(t *testing.T) {
	e := enrol(t)
	leaf, root := e.svid.Certs[0], e.svid.Roots[0]
	now := leaf.NotBefore.Add(time.Hour)
	for _, src := range []struct {
		name string
		o    secretsOptions
	}{
		{"sds", secretsOptions{sdsSocket: e.socket, timeout: 20 * time.Second}},
		{"files", secretsOptions{certDir: e.certDir}},
	} {
		t.Run(src.name, func(t *testing.T) {
			run := func(format string) string {
				o := src.o
				o.output, o.now = format, func() time.Time { return now }
				var out bytes.Buffer
				if err := o.run(context.Background(), &out); err != nil {
					t.Fatalf("secrets -o %s: %v", format, err)
				}
				assertNoKey(t, src.name+" -o "+format, out.String(), e.svid.KeyPEM)
				return out.String()
			}
			table := squeeze(run(outTable))
			wantLeaf := fmt.Sprintf("default Cert Chain spiffe://example.org/ns/shop/sa/cart %x %s %s %s %s",
				leaf.SerialNumber, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339),
				humanDuration(leaf.NotAfter.Sub(now)), leaf.Issuer.String())
			wantRoot := fmt.Sprintf("ROOTCA CA %s %x", root.Subject.String(), root.SerialNumber)
			for _, want := range []string{wantLeaf, wantRoot, fmt.Sprintf("ROOTCA: %d root(s): %s", len(e.svid.Roots), root.Subject.String())} {
				if !strings.Contains(table, want) {
					t.Errorf("table lacks %q:\n%s", want, table)
				}
			}
			var views []secretView
			if err := json.Unmarshal([]byte(run(outJSON)), &views); err != nil {
				t.Fatal(err)
			}
			if len(views) != 2 || views[0].Name != sds.SecretDefault || views[1].Name != sds.SecretRootCA ||
				views[0].Certificates[0].SPIFFEID != e.svid.ID.String() || views[0].Certificates[0].Serial != fmt.Sprintf("%x", leaf.SerialNumber) ||
				!views[0].Certificates[0].NotAfter.Equal(leaf.NotAfter) || len(views[1].Certificates) != len(e.svid.Roots) || !views[1].Certificates[0].IsCA {
				t.Errorf("json = %+v", views)
			}
			if y := run(outYAML); !strings.Contains(y, "spiffeID: "+e.svid.ID.String()) {
				t.Errorf("yaml lacks the SPIFFE ID:\n%s", y)
			}
		})
	}
}

// TestProxyConfigSecretsUnavailable: an SDS server with no identity yet
// and a missing cert dir are reported, not waited on forever.
func TestProxyConfigSecretsUnavailable(t *testing.T) {
	srv, err := sds.NewServer(sds.Config{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "sds.sock")
	serveSDS(t, srv, socket)
	o := secretsOptions{sdsSocket: socket, timeout: 200 * time.Millisecond, output: outTable, now: time.Now}
	if err := o.run(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "have none of default, ROOTCA") {
		t.Errorf("empty sds server: %v", err)
	}
	o = secretsOptions{certDir: t.TempDir(), output: outTable, now: time.Now}
	if err := o.run(context.Background(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "cert-chain.pem") {
		t.Errorf("empty cert dir: %v", err)
	}
	if _, err := execRoot(t, "proxy-config", "secrets"); err == nil || !strings.Contains(err.Error(), "--sds-socket PATH or --cert-dir DIR") {
		t.Errorf("no source: %v", err)
	}
	if _, err := execRoot(t, "proxy-config", "secrets", "--cert-dir", t.TempDir(), "--server", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "--server does not apply") {
		t.Errorf("--server with secrets: %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3650*24*time.Hour - 61*time.Minute:    "3649d23h",
		23*time.Hour + 61*time.Second:         "23h1m",
		42*time.Second + 400*time.Millisecond: "42s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	if got := expiresIn(now.Add(-90*time.Second), now); got != "expired 1m30s ago" {
		t.Errorf("expired: %q", got)
	}
}
