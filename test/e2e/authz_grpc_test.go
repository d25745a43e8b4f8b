package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/xds/hooks"
)

// newAuthzMesh is a control plane with Ward's production security hooks
// (xds/hooks: mTLS, then native RBAC for proxyless gRPC), fed by a watched
// config directory, and a Ward CA issuing identities.
func newAuthzMesh(t *testing.T, initial string) *authnMesh {
	t.Helper()
	return newSecureMesh(t, initial, hooks.New(hooks.Config{}))
}

// authzServer starts the proxyless echo server with a Ward identity
// (ns/default) and waits until it serves.
func authzServer(t *testing.T, m *authnMesh, lis net.Listener) {
	t.Helper()
	boot := m.identity("ns", "default", "echo-1", "127.0.0.1", map[string]string{"app": "echo", mesh.LabelTLSMode: "istio"})
	serveXDS(t, "the grpc server", lis, boot, &peerBackend{}, wardServerCreds(t))
}

// meshClient dials echo.test through Ward with a Ward identity ns/sa.
func meshClient(t *testing.T, m *authnMesh, ns, sa string) testgrpc.TestServiceClient {
	t.Helper()
	boot := m.identity(ns, sa, sa+"-client", "127.0.0.2", map[string]string{"app": sa})
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///echo.test:7070", grpc.WithResolvers(resolver), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

func authzConfig(port int, policies string) string {
	return authnConfig(port, "STRICT") + "---\n" + policies
}

// caller is one client identity (and request header) of the subset.
type caller struct {
	name   string
	ns, sa string
	tenant string
}

type expectation struct {
	who   string
	allow bool
}

// authzCase is one policy set and the verdicts grpc-go's RBAC engine must
// reach; the Rego path must agree on each.
type authzCase struct {
	name     string
	policies string
	want     []expectation
}

func TestAuthzProxylessGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	cases := authzCases()
	m := newAuthzMesh(t, authzConfig(port, cases[0].policies))
	authzServer(t, m, lis)
	callers := []caller{
		{name: "good", ns: "ns", sa: "client"},
		{name: "bad", ns: "ns", sa: "bad"},
		{name: "outsider", ns: "other", sa: "x"},
		{name: "evil-tenant", ns: "ns", sa: "client", tenant: "evil"},
	}
	clients := map[string]testgrpc.TestServiceClient{}
	for _, c := range callers {
		if _, ok := clients[c.ns+"/"+c.sa]; !ok {
			clients[c.ns+"/"+c.sa] = meshClient(t, m, c.ns, c.sa)
		}
	}
	byName := map[string]caller{}
	for _, c := range callers {
		byName[c.name] = c
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if i > 0 {
				m.write(authzConfig(port, tc.policies)) // a policy change, no restart
			}
			for _, e := range tc.want {
				c := byName[e.who]
				checkRego(t, tc.policies, c, e.allow)
				eventually(t, fmt.Sprintf("%s: %s allowed=%v", tc.name, e.who, e.allow), func() error {
					return verdict(clients[c.ns+"/"+c.sa], c.tenant, e.allow)
				})
			}
		})
	}
}

// verdict makes one call and compares the outcome: OK, or PermissionDenied
// from the server's RBAC.
func verdict(c testgrpc.TestServiceClient, tenant string, allow bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", tenant)
	}
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	switch {
	case allow && err == nil, !allow && codeOf(err) == codes.PermissionDenied:
		return nil
	case allow:
		return fmt.Errorf("denied: %v", err)
	case err == nil:
		return fmt.Errorf("allowed")
	}
	return fmt.Errorf("want PermissionDenied, got %v", err)
}

// checkRego decides the same call with the Rego engine.
func checkRego(t *testing.T, policies string, c caller, allow bool) {
	t.Helper()
	cfgs, _, err := schema.DecodeAll([]byte(policies), mesh.Source{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := authz.NewEngine(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs), authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p, err := eng.For(context.Background(), "ns", mesh.Labels{"app": "echo", mesh.LabelTLSMode: "istio"})
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{"content-type": "application/grpc"}
	if c.tenant != "" {
		headers["x-tenant"] = c.tenant
	}
	d, err := p.Decide(context.Background(), &authz.Request{
		Source:      authz.Peer{IP: "127.0.0.1", Principal: fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", c.ns, c.sa)},
		Destination: authz.Peer{IP: "127.0.0.1", Port: 7070},
		HTTP:        &authz.HTTPRequest{Method: "POST", Path: "/grpc.testing.TestService/UnaryCall", Host: "echo.test:7070", Headers: headers},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed != allow {
		t.Errorf("Rego decides %s for %s (%s), grpc-go RBAC is expected to decide allowed=%v", d.Explain(), c.name, strings.TrimSpace(policies[:min(len(policies), 80)]), allow)
	}
}

func authzCases() []authzCase {
	const head = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: ns%s}\nspec:\n"
	pol := func(name, spec string) string { return fmt.Sprintf(head, name, "") + spec + "---\n" }
	dry := func(name, spec string) string {
		return fmt.Sprintf(head, name, `, annotations: {istio.io/dry-run: "true"}`) + spec + "---\n"
	}
	denyBad := pol("deny-bad", "  action: DENY\n  rules: [{from: [{source: {principals: [\"cluster.local/ns/ns/sa/bad\"]}}]}]\n")
	// Each case lists first a verdict that differs from the previous
	// case's, so waiting for it proves the new policy is in force before
	// the remaining verdicts are checked.
	return []authzCase{
		{"deny by principal, allow by namespace", denyBad + pol("allow-ns", "  rules: [{from: [{source: {namespaces: [\"ns\"]}}]}]\n"),
			[]expectation{{"good", true}, {"bad", false}, {"outsider", false}}},
		{"policy change applies without restart", denyBad + pol("allow-ns", "  rules: [{from: [{source: {namespaces: [\"ns\", \"other\"]}}]}]\n"),
			[]expectation{{"outsider", true}, {"good", true}, {"bad", false}}},
		{"allow nothing", pol("nothing", "  {}\n"),
			[]expectation{{"good", false}, {"outsider", false}, {"bad", false}}},
		{"principal prefix", pol("prefix", "  rules: [{from: [{source: {principals: [\"cluster.local/ns/ns/*\"]}}]}]\n"),
			[]expectation{{"good", true}, {"bad", true}, {"outsider", false}}},
		{"service accounts", pol("sas", "  rules: [{from: [{source: {serviceAccounts: [\"ns/client\", \"other/x\"]}}]}]\n"),
			[]expectation{{"outsider", true}, {"good", true}, {"bad", false}}},
		{"method and path", pol("ops", "  rules: [{to: [{operation: {methods: [\"POST\"], paths: [\"/grpc.testing.TestService/*\"]}}]}]\n"),
			[]expectation{{"bad", true}, {"good", true}, {"outsider", true}}},
		{"notPaths", pol("not-paths", "  rules: [{to: [{operation: {notPaths: [\"/grpc.testing.TestService/UnaryCall\"]}}]}]\n"),
			[]expectation{{"good", false}, {"outsider", false}}},
		{"audit never decides", pol("audit", "  action: AUDIT\n  rules: [{}]\n"),
			[]expectation{{"good", true}, {"outsider", true}, {"bad", true}}},
		{"deny by header", pol("deny-tenant", "  action: DENY\n  rules: [{when: [{key: \"request.headers[x-tenant]\", values: [\"evil\"]}]}]\n"),
			[]expectation{{"evil-tenant", false}, {"good", true}}},
		{"notPrincipals deny", pol("deny-others", "  action: DENY\n  rules: [{from: [{source: {notPrincipals: [\"cluster.local/ns/ns/sa/client\"]}}]}]\n"),
			[]expectation{{"bad", false}, {"good", true}, {"outsider", false}}},
		{"dry-run deny is not enforced", dry("dry-deny", "  action: DENY\n  rules: [{}]\n"),
			[]expectation{{"bad", true}, {"good", true}, {"outsider", true}}},
		{"deny beats allow", pol("allow-all", "  rules: [{}]\n") + pol("deny-other-ns", "  action: DENY\n  rules: [{from: [{source: {namespaces: [\"other\"]}}]}]\n"),
			[]expectation{{"outsider", false}, {"good", true}}},
		{"deny by ipBlocks", pol("deny-loopback", "  action: DENY\n  rules: [{from: [{source: {ipBlocks: [\"127.0.0.0/8\"]}}]}]\n"),
			[]expectation{{"good", false}, {"outsider", false}}},
		{"allow by notIpBlocks and source.ip", pol("allow-not-10", "  rules: [{from: [{source: {notIpBlocks: [\"10.0.0.0/8\"]}}], when: [{key: source.ip, values: [\"127.0.0.1\"]}]}]\n"),
			[]expectation{{"good", true}, {"outsider", true}}},
	}
}
