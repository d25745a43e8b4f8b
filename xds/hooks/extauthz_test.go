package hooks

import (
	"flag"
	goldenfile "github.com/wardmesh/ward/internal/golden"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/<name>.golden.yaml (-update rewrites it).
func golden(t *testing.T, name string, got proto.Message) {
	t.Helper()
	goldenfile.Proto(t, name, got, *update)
}

func upstreamTLS(t *testing.T, c *cluster.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	ts := c.GetTransportSocket()
	if ts == nil {
		return nil
	}
	if ts.GetName() != authn.TLSSocketName {
		t.Fatalf("transport socket %q, want %s", ts.GetName(), authn.TLSSocketName)
	}
	tc := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestExtAuthzClusterMTLS: the cluster to Ward's secure port originates
// mTLS with the workload's SDS certificate and roots, accepts only the
// control plane's SPIFFE ID, offers h2 and follows the mesh's TLS
// profile; plaintext stays plaintext.
func TestExtAuthzClusterMTLS(t *testing.T) {
	target, err := ParseExtAuthzTarget("10.0.0.1:15012")
	if err != nil {
		t.Fatal(err)
	}
	target.TLS = true
	c := target.Cluster(mesh.MeshConfig{TrustDomain: "example.org"})
	if err := translate.ValidateDeep(c); err != nil {
		t.Fatalf("cluster does not validate: %v", err)
	}
	golden(t, "extauthz-cluster-mtls", c)

	tc := upstreamTLS(t, c)
	common := tc.GetCommonTlsContext()
	if got := common.GetTlsCertificateSdsSecretConfigs(); len(got) != 1 || got[0].GetName() != authn.SecretDefault {
		t.Errorf("client certificate secrets %v, want SDS %q", got, authn.SecretDefault)
	}
	cvc := common.GetCombinedValidationContext()
	if cvc.GetValidationContextSdsSecretConfig().GetName() != authn.SecretRootCA {
		t.Errorf("validation from %q, want SDS %q", cvc.GetValidationContextSdsSecretConfig().GetName(), authn.SecretRootCA)
	}
	sans := cvc.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].GetSanType() != tlsv3.SubjectAltNameMatcher_URI || sans[0].GetMatcher().GetExact() != "spiffe://example.org/ns/ward-system/sa/ward" {
		t.Errorf("SAN matchers %v, want exactly the control plane's URI SAN in example.org", sans)
	}
	if got := common.GetAlpnProtocols(); !cmp.Equal(got, []string{"h2"}) {
		t.Errorf("ALPN %v, want [h2]", got)
	}

	// An explicit server ID wins; the FIPS profile reaches this link too.
	target.ServerID = spiffeid.RequireFromString("spiffe://example.org/ns/mesh-ops/sa/ward-cp")
	tc = upstreamTLS(t, target.Cluster(mesh.MeshConfig{TrustDomain: "example.org", TLSProfile: string(authn.ProfileFIPS)}))
	if got := tc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact(); got != target.ServerID.String() {
		t.Errorf("SAN %q, want the configured server ID", got)
	}
	if p := tc.GetCommonTlsContext().GetTlsParams(); !proto.Equal(p, authn.TLSParams(authn.ProfileFIPS)) {
		t.Errorf("TLS params %v, want the FIPS profile's", p)
	}

	target.TLS = false
	if c := target.Cluster(mesh.MeshConfig{}); c.GetTransportSocket() != nil {
		t.Errorf("plaintext target has a transport socket: %v", c.GetTransportSocket())
	}
}

// TestExtAuthzMTLSGenerated: with an mTLS target, the Envoy proxies'
// generated resources carry the TLS cluster and pass Validate; the
// fingerprint tells mTLS from plaintext.
func TestExtAuthzMTLSGenerated(t *testing.T) {
	snap := examples(t)
	target, err := ParseExtAuthzTarget("127.0.0.1:15012")
	if err != nil {
		t.Fatal(err)
	}
	target.TLS = true
	p := &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}
	h := New(Config{ExtAuthz: target})
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), h)
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	var found *cluster.Cluster
	for _, c := range res.Clusters {
		if c.GetName() == target.ClusterName() {
			found = c
		}
	}
	if found == nil || upstreamTLS(t, found) == nil {
		t.Fatalf("no mTLS ext_authz cluster among %d clusters", len(res.Clusters))
	}
	plain := *target
	plain.TLS = false
	if h.Fingerprint(snap, p) == New(Config{ExtAuthz: &plain}).Fingerprint(snap, p) {
		t.Error("mTLS and plaintext targets share a fingerprint")
	}
}
