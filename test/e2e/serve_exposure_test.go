package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/agent"
)

// nonLoopbackIP returns an address of this host other than loopback, to
// call a server as a remote caller would.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeExposureHardened performs issue #13's exposure attacks against
// a real `ward serve`: the debug server bound beyond loopback refuses
// topology pages to a remote caller without credentials while health,
// readiness and metrics stay open (a loopback caller sees everything);
// ADS on the secure port without a client certificate is refused; the
// startup log says where plaintext ADS listens.
func TestServeExposureHardened(t *testing.T) {
	ip := nonLoopbackIP(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.CopyFS(cfg, os.DirFS(examplesDir(t))); err != nil {
		t.Fatal(err)
	}
	p := startWard(t, "serve", "--config", cfg, "--state", filepath.Join(dir, "state"),
		"--debug-addr", "0.0.0.0:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "",
		"--debug-tls-addr", "0.0.0.0:0")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+) secure_addr=(\S+) .*debug_tls_addr=(\S+)`), time.Minute)
	p.waitLine(t, regexp.MustCompile(`plaintext ADS listens on loopback only`), 30*time.Second)
	_, port, err := net.SplitHostPort(m[1])
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(m[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	openADS(t, cc, &core.Node{Id: "sidecar~10.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local"})
	openADS(t, cc, &core.Node{Id: "sidecar~10.0.0.2~pay-1.payments~payments.svc.cluster.local"})

	remote, local := "http://"+net.JoinHostPort(ip, port), "http://"+net.JoinHostPort("127.0.0.1", port)
	for _, page := range []string{"/debug/connections", "/debug/syncz", "/debug/config_dump?proxy=x", "/debug/configz", "/debug/ca/issued", "/debug/ca"} {
		if code := httpStatus(t, remote+page); code != http.StatusUnauthorized {
			t.Errorf("remote %s without credentials: %d, want 401", page, code)
		}
	}
	for _, page := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := httpStatus(t, remote+page); code != http.StatusOK {
			t.Errorf("remote %s: %d, want 200 (stays open)", page, code)
		}
	}
	for _, page := range []string{"/debug/connections", "/debug/configz", "/debug/ca/issued"} {
		if code := httpStatus(t, local+page); code != http.StatusOK {
			t.Errorf("loopback %s: %d, want 200", page, code)
		}
	}

	// ADS on the secure port with TLS but no client certificate.
	sc, err := grpc.NewClient(m[3], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))) //nolint:gosec // the attacker does not care who the server is
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(sc).StreamAggregatedResources(ctx)
	if err == nil {
		_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType,
			Node: &core.Node{Id: "sidecar~10.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local"}})
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ADS on the secure port without a client certificate: %v; want Unauthenticated", err)
	}

	// A workload of bookinfo (enrolled by the agent with a join token):
	// on the TLS debug listener it sees bookinfo's proxies only and no
	// control-plane page; on the secure port it cannot claim a payments
	// node, and is served its own.
	enrolAgent(t, dir, filepath.Join(dir, "state"), m[3], m[2])
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent-out", agent.FileCertChain), filepath.Join(dir, "agent-out", agent.FileKey))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil || !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("roots: %v", err)
	}
	workload := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	_, tlsPort, err := net.SplitHostPort(m[4])
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: workload}}
	base := "https://" + net.JoinHostPort(ip, tlsPort)
	resp, err := hc.Get(base + "/debug/connections")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct{ Proxy, Namespace string }
	err = json.NewDecoder(resp.Body).Decode(&rows)
	resp.Body.Close()
	if err != nil || len(rows) == 0 {
		t.Fatalf("connections over the TLS debug listener: %d %v %v", resp.StatusCode, rows, err)
	}
	for _, r := range rows {
		if r.Namespace != "bookinfo" {
			t.Errorf("a bookinfo workload sees proxy %s of namespace %s", r.Proxy, r.Namespace)
		}
	}
	if resp, err := hc.Get(base + "/debug/configz"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("configz for a workload certificate: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	wc, err := grpc.NewClient(m[3], grpc.WithTransportCredentials(credentials.NewTLS(workload)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	squat := func(node *core.Node) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := discovery.NewAggregatedDiscoveryServiceClient(wc).StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: node}); err != nil && err != io.EOF {
			return err
		}
		_, err = st.Recv()
		return err
	}
	err = squat(&core.Node{Id: "sidecar~10.0.0.2~pay-1.payments~payments.svc.cluster.local"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `namespace "payments"`) {
		t.Errorf("bookinfo certificate claiming a payments node on the secure port: %v; want PermissionDenied naming the mismatch", err)
	}
	if err := squat(&core.Node{Id: "sidecar~10.0.0.9~productpage-0.bookinfo~bookinfo.svc.cluster.local"}); err != nil {
		t.Errorf("bookinfo workload's own node on the secure port: %v", err)
	}
}
