package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
		"--debug-addr", "0.0.0.0:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+) secure_addr=(\S+)`), time.Minute)
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
}
