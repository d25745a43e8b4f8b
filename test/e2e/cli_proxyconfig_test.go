package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestCLIProxyConfigAgainstServe runs `ward proxy-config clusters`,
// `listeners`, `routes` and `endpoints` (the binary) against `ward serve`
// on the examples, for a proxy registered by a raw ADS client, and checks
// the tables read the server's config dump: auto-mTLS clusters with their
// SANs, the canary split, STRICT inbound chains.
func TestCLIProxyConfigAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	server, cc := serveExamples(t)
	const id = "sidecar~127.0.0.20~productpage-1.bookinfo~bookinfo.svc.cluster.local"
	openADS(t, cc, &core.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("bookinfo"),
		"LABELS": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"app": structpb.NewStringValue("productpage"), "version": structpb.NewStringValue("v1")}}),
	}}})

	pc := func(args ...string) string {
		t.Helper()
		out, stderr, code := runWard(t, append([]string{"proxy-config"}, append(args, "--server", server, "--proxy", id)...)...)
		if code != 0 {
			t.Fatalf("proxy-config %v: exit %d: %s", args, code, stderr)
		}
		return out
	}
	// The server generates for a proxy when it connects: bounded retries
	// until its dump holds clusters.
	var clusters string
	eventually(t, "the proxy's clusters in its config dump", func() error {
		clusters = squeezeSpaces(pc("clusters"))
		if !strings.Contains(clusters, "outbound|9080|v1|reviews.bookinfo.svc.cluster.local") {
			return errNotYet
		}
		return nil
	})
	for _, want := range []string{
		"NAME TYPE SUBSET TLS SAN",
		"outbound|9080|v1|reviews.bookinfo.svc.cluster.local EDS v1 mTLS spiffe://cluster.local/ns/bookinfo/sa/reviews",
		"outbound|9080||ratings.bookinfo.svc.cluster.local EDS - mTLS spiffe://cluster.local/ns/bookinfo/sa/ratings",
		"PassthroughCluster ORIGINAL_DST - none -",
	} {
		if !strings.Contains(clusters, want) {
			t.Errorf("clusters lack %q:\n%s", want, clusters)
		}
	}

	listeners := squeezeSpaces(pc("listeners"))
	for _, want := range []string{
		"NAME ADDRESS:PORT CHAINS CHAIN MATCH TLS DESTINATION",
		"0.0.0.0_9080 0.0.0.0:9080 1 - ALL none route: 9080",
		"virtualOutbound 0.0.0.0:15001",
	} {
		if !strings.Contains(listeners, want) {
			t.Errorf("listeners lack %q:\n%s", want, listeners)
		}
	}
	if !regexp.MustCompile(`(?m)^virtualInbound 0\.0\.0\.0:15006 \d+ inbound\|9080\|\|\S* port=9080 transport=tls mTLS `).MatchString(listeners) {
		t.Errorf("listeners lack productpage's STRICT inbound chain:\n%s", listeners)
	}

	routes := squeezeSpaces(pc("routes", "--name", "9080"))
	if !strings.Contains(routes, "outbound|9080|v1|reviews.bookinfo.svc.cluster.local 80%, outbound|9080|v2|reviews.bookinfo.svc.cluster.local 20%") {
		t.Errorf("routes lack the reviews canary:\n%s", routes)
	}
	endpoints := squeezeSpaces(pc("endpoints", "--name", "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"))
	if want := "outbound|9080|v2|reviews.bookinfo.svc.cluster.local 127.0.0.22:9080 "; !strings.Contains(endpoints, want) {
		t.Errorf("endpoints lack %q:\n%s", want, endpoints)
	}

	var raw []map[string]any
	if err := json.Unmarshal([]byte(pc("clusters", "--name", "outbound|9080|v2|reviews.bookinfo.svc.cluster.local", "-o", "json")), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 1 || raw[0]["name"] != "outbound|9080|v2|reviews.bookinfo.svc.cluster.local" || raw[0]["transport_socket"] == nil {
		t.Errorf("clusters -o json = %v", raw)
	}
	_, stderr, code := runWard(t, "proxy-config", "clusters", "--server", server, "--proxy", "sidecar~10.9.9.9~nobody.bookinfo")
	if code != 1 || !strings.Contains(stderr, "unknown proxy") {
		t.Errorf("unknown proxy: exit %d, stderr %q", code, stderr)
	}
	ids, _, code := runWard(t, "__complete", "proxy-config", "clusters", "--server", server, "--proxy", "sidecar~127.0.0.20")
	if code != 0 || !strings.Contains(ids, id) {
		t.Errorf("__complete clusters --proxy: exit %d:\n%s", code, ids)
	}
}
