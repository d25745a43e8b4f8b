package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// serveExamples starts `ward serve` (the binary) on a copy of the
// examples, every server on a free loopback port, and returns the URL of
// its debug server (for the CLI's --server) and a plaintext client of its
// xDS server, closed when the test ends.
func serveExamples(t *testing.T) (server string, cc *grpc.ClientConn) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.CopyFS(cfg, os.DirFS(examplesDir(t))); err != nil {
		t.Fatal(err)
	}
	p := startWard(t, "serve", "--config", cfg, "--state", filepath.Join(dir, "state"),
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+)`), time.Minute)
	cc, err := grpc.NewClient(m[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return "http://" + m[1], cc
}

// openADS opens an ADS stream for node (a raw proxy), asks for clusters
// and waits for the first response, so the server has generated the
// proxy's config. The stream stays open until the test ends.
func openADS(t *testing.T, cc *grpc.ClientConn, node *core.Node) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *discovery.DiscoveryResponse) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   *discovery.DiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := st.Recv()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("%s: no clusters: %v", node.GetId(), res.err)
		}
		return st, res.r
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no clusters within 30s", node.GetId())
		return nil, nil
	}
}
