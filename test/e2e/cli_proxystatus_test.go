package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// TestCLIProxyStatusAgainstServe runs `ward proxy-status` (the binary)
// against `ward serve` with two raw ADS clients: one ACKs its clusters,
// one rejects them. It also checks the completion script and the
// completion of proxy ids from the running server.
func TestCLIProxyStatusAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	server, cc := serveExamples(t)
	const (
		good = "sidecar~10.9.0.1~productpage-1.bookinfo~bookinfo.svc.cluster.local"
		bad  = "sidecar~10.9.0.2~reviews-1.bookinfo~bookinfo.svc.cluster.local"
	)
	nack := "cluster outbound|9080||reviews.bookinfo.svc.cluster.local: rejected by the e2e client"
	ack(t, cc, good, "")
	ack(t, cc, bad, nack)

	// The server records ACKs and NACKs asynchronously: bounded retries.
	var out string
	eventually(t, "proxy-status shows both states", func() error {
		o, stderr, code := runWard(t, "proxy-status", "--server", server)
		out = o
		if code != 0 {
			t.Fatalf("proxy-status: exit %d: %s", code, stderr)
		}
		if !strings.Contains(squeezeSpaces(o), good+" sidecar bookinfo SYNCED") || !strings.Contains(squeezeSpaces(o), bad+" sidecar bookinfo NACK") {
			return errNotYet
		}
		return nil
	})
	if !strings.Contains(out, bad+" CDS: "+nack) {
		t.Errorf("proxy-status does not list the rejection:\n%s", out)
	}

	js, stderr, code := runWard(t, "proxy-status", bad, "--server", server, "-o", "json")
	if code != 0 {
		t.Fatalf("proxy-status %s -o json: exit %d: %s", bad, code, stderr)
	}
	var detail struct {
		Proxy string
		Types map[string]struct{ Status, Error string }
	}
	if err := json.Unmarshal([]byte(js), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Proxy != bad || detail.Types["cds"].Status != "NACK" || detail.Types["cds"].Error != nack || detail.Types["lds"].Status != "NOT SENT" {
		t.Errorf("detail = %+v", detail)
	}

	_, stderr, code = runWard(t, "proxy-status", "sidecar~10.9.0.1~productpage-2.bookinfo", "--server", server)
	if code != 1 || !strings.Contains(stderr, "did you mean") || !strings.Contains(stderr, good) {
		t.Errorf("unknown id: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runWard(t, "proxy-status", "--server", server, "-o", "xml")
	if code != 1 || !strings.Contains(stderr, "valid: table, json, yaml") {
		t.Errorf("-o xml: exit %d, stderr %q", code, stderr)
	}

	// Shell completion: the script, and proxy ids from the server.
	script, _, code := runWard(t, "completion", "bash")
	if code != 0 || !strings.Contains(script, "__start_ward") {
		t.Errorf("completion bash: exit %d, %d bytes", code, len(script))
	}
	ids, _, code := runWard(t, "__complete", "proxy-config", "--server", server, "--proxy", "sidecar~10.9.0.2")
	if code != 0 || !strings.Contains(ids, bad) || strings.Contains(ids, good) {
		t.Errorf("__complete --proxy: exit %d:\n%s", code, ids)
	}
}

// ack opens an ADS stream for node id (openADS) and ACKs its clusters,
// or NACKs them with nack when it is not empty. The stream stays open
// until the test ends.
func ack(t *testing.T, cc *grpc.ClientConn, id, nack string) {
	t.Helper()
	node := &core.Node{Id: id}
	st, r := openADS(t, cc, node)
	req := &discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
	if nack != "" {
		req.VersionInfo = ""
		req.ErrorDetail = &status.Status{Code: 3, Message: nack}
	}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
}

// squeezeSpaces collapses runs of blanks (table padding) to one space.
func squeezeSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
