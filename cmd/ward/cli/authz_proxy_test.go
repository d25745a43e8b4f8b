package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds"
	"github.com/wardmesh/ward/xds/simulate"
)

func TestSimRequestFromFlags(t *testing.T) {
	base := authzCheckOptions{sourceIP: "10.0.0.1", port: 8080, method: "GET", path: "/p"}
	with := func(f func(*authzCheckOptions)) authzCheckOptions {
		o := base
		f(&o)
		return o
	}
	http := func(r simulate.Request) simulate.Request {
		r.SrcIP, r.SrcPort, r.DstIP, r.DstPort, r.Method, r.Path, r.Host = "10.0.0.1", 40000, "10.0.0.7", 8080, "GET", "/p", "web"
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		o     authzCheckOptions
		pt    mesh.ProxyType
		proto mesh.Protocol
		want  simulate.Request
	}{
		{"plaintext sidecar HTTP", base, mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.HTTP1})},
		{"mTLS peer from --from, Istio ALPN", with(func(o *authzCheckOptions) { o.from = "cluster.local/ns/a/sa/b"; o.sni = "web.svc" }), mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.HTTP1, TLS: true, SNI: "web.svc", PeerURISAN: "spiffe://cluster.local/ns/a/sa/b", ALPN: []string{"istio-http/1.1", "istio"}})},
		{"gateway listens directly", base, mesh.ProxyRouter, mesh.ProtocolUnknown,
			http(simulate.Request{Capture: simulate.Direct, Protocol: simulate.HTTP1})},
		{"port protocol gRPC", base, mesh.ProxySidecar, mesh.ProtocolGRPC,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.GRPC})},
		{"proxyless speaks gRPC", with(func(o *authzCheckOptions) { o.from = "spiffe://cluster.local/ns/a/sa/b" }), mesh.ProxyGRPC, mesh.ProtocolUnknown,
			http(simulate.Request{Capture: simulate.Direct, Protocol: simulate.GRPC, TLS: true, PeerURISAN: "spiffe://cluster.local/ns/a/sa/b", ALPN: []string{"istio-h2", "istio"}})},
		{"--http2 overrides the port", with(func(o *authzCheckOptions) { o.http2 = true }), mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.HTTP2})},
		{"--grpc overrides the port", with(func(o *authzCheckOptions) { o.grpc = true }), mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.GRPC})},
		{"--tcp: no HTTP attributes", with(func(o *authzCheckOptions) { o.tcp = true; o.from = "cluster.local/ns/a/sa/b" }), mesh.ProxySidecar, mesh.ProtocolTCP,
			simulate.Request{Capture: simulate.Inbound, SrcIP: "10.0.0.1", SrcPort: 40000, DstIP: "10.0.0.7", DstPort: 8080, TLS: true,
				PeerURISAN: "spiffe://cluster.local/ns/a/sa/b", ALPN: []string{"istio-peer-exchange", "istio"}}},
		{"headers, remote IP as XFF", with(func(o *authzCheckOptions) { o.headers = []string{"X-Tenant=acme"}; o.remoteIP = "1.2.3.4" }), mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.HTTP1, Headers: map[string]string{"x-tenant": "acme", "x-forwarded-for": "1.2.3.4"}})},
		{"claims: a token jwt_authn verified", with(func(o *authzCheckOptions) { o.claims = `{"iss":"https://i","sub":"s"}` }), mesh.ProxySidecar, mesh.ProtocolHTTP,
			http(simulate.Request{Capture: simulate.Inbound, Protocol: simulate.HTTP1,
				JWT: simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://i", Claims: map[string]any{"iss": "https://i", "sub": "s"}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.o.simRequest(tc.pt, "10.0.0.7", "web", tc.proto)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
		})
	}
	if _, err := with(func(o *authzCheckOptions) { o.headers = []string{"nokey"} }).simRequest(mesh.ProxySidecar, "10.0.0.7", "web", mesh.ProtocolHTTP); err == nil {
		t.Error("a header without = was accepted")
	}
	if _, err := proxyTypeOf("waypoint"); err == nil {
		t.Error("--proxy-type waypoint was accepted")
	}
}

func TestExplainProxy(t *testing.T) {
	for _, tc := range []struct {
		r       simulate.Result
		calls   []checkCall
		allowed bool
		expl    string
		authz   bool
	}{
		{simulate.Result{Verdict: simulate.Allowed, Policy: "ns[a]-policy[p]-rule[0]"}, nil, true, "allowed by ns[a]-policy[p]-rule[0]", true},
		{simulate.Result{Verdict: simulate.Allowed, Cluster: "inbound|80||"}, nil, true, "allowed: no filter denied (forwarded to inbound|80||)", true},
		{simulate.Result{Verdict: simulate.Denied, Filter: "ward.authz.rbac.deny", Policy: "ns[a]-policy[d]-rule[1]"}, nil, false, "denied by ns[a]-policy[d]-rule[1] (ward.authz.rbac.deny)", true},
		{simulate.Result{Verdict: simulate.Denied, Filter: "ward.authz.rbac.allow"}, nil, false, "denied: no ALLOW policy matched (ward.authz.rbac.allow)", true},
		{simulate.Result{Verdict: simulate.Denied, Filter: "ward.authz.ext_authz"}, []checkCall{{Filter: "ward.authz.ext_authz", Rule: "ns[a]-policy[d]-rule[0]"}},
			false, "denied by ns[a]-policy[d]-rule[0] (ward.authz.ext_authz)", true},
		{simulate.Result{Verdict: simulate.Denied, Filter: "ward.authz.ext_authz"}, nil, false, "denied: the ext_authz check failed closed (ward.authz.ext_authz)", true},
		{simulate.Result{Verdict: simulate.Denied, Filter: "envoy.filters.http.jwt_authn", Status: 401, Reason: "jwt_authn: Jwt issuer is not configured"},
			nil, false, "rejected by authentication: jwt_authn: Jwt issuer is not configured (401)", true},
		{simulate.Result{Verdict: simulate.NoChain, Reason: "no_filter_chain"}, nil, false, "no filter chain matches: the proxy closes the connection (no_filter_chain)", false},
		{simulate.Result{Verdict: simulate.NoRoute, Status: 404, Reason: "no_virtual_host"}, nil, false, "no route (404, no_virtual_host)", false},
		{simulate.Result{Verdict: simulate.Rejected, Status: 400, Reason: "invalid_path"}, nil, false, "rejected by the HTTP connection manager (400, invalid_path)", false},
	} {
		allowed, expl, az := explainProxy(&tc.r, tc.calls)
		if allowed != tc.allowed || expl != tc.expl || az != tc.authz {
			t.Errorf("%s: got (%v, %q, %v), want (%v, %q, %v)", tc.r.String(), allowed, expl, az, tc.allowed, tc.expl, tc.authz)
		}
	}
}

// policyOf is a policy-level answer for agreement tests.
func policyOf(allowed bool, authnReject string) *policyCheck {
	pc := &policyCheck{w: authz.Workload{Namespace: "app", Name: "web-1"}, authnReject: authnReject}
	if authnReject == "" {
		pc.dec = &authz.Decision{Verdict: authz.Verdict{Allowed: allowed, Reason: authz.ReasonNoAllowPolicy}}
	}
	return pc
}

func runOf(r simulate.Result) *proxyRun {
	run := &proxyRun{Result: &r, Facts: factsOf(&r)}
	run.Allowed, run.Explanation, run.authorization = explainProxy(&r, nil)
	return run
}

func TestAgreement(t *testing.T) {
	allowed := simulate.Result{Verdict: simulate.Allowed, Cluster: "c"}
	denied := simulate.Result{Verdict: simulate.Denied, Filter: "ward.authz.rbac.deny", Policy: "p"}
	jwt := simulate.Result{Verdict: simulate.Denied, Filter: "envoy.filters.http.jwt_authn", Status: 401}
	noRoute := simulate.Result{Verdict: simulate.NoRoute, Status: 404}
	for _, tc := range []struct {
		name string
		r    simulate.Result
		pc   *policyCheck
		ok   bool
	}{
		{"both allow", allowed, policyOf(true, ""), true},
		{"both deny", denied, policyOf(false, ""), true},
		{"proxy fails open", allowed, policyOf(false, ""), false},
		{"proxy denies what policy allows", denied, policyOf(true, ""), false},
		{"both reject the token", jwt, policyOf(false, "untrusted issuer"), true},
		{"proxy lets an untrusted token through", allowed, policyOf(false, "untrusted issuer"), false},
		{"no route is not an authorization outcome", noRoute, policyOf(true, ""), true},
	} {
		if ok, note := agreement(runOf(tc.r), tc.pc); ok != tc.ok {
			t.Errorf("%s: agreement = %v (%s), want %v", tc.name, ok, note, tc.ok)
		}
	}
}

// TestDisagreementExitsOne: a disagreement is printed loudly and exits 1,
// whatever the proxy's verdict.
func TestDisagreementExitsOne(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := newAuthzCheckCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := finish(cmd, authzCheckOptions{output: outTable}, runOf(simulate.Result{Verdict: simulate.Allowed, Cluster: "inbound|80||"}), policyOf(false, ""))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !errors.Is(err, errDisagree) {
		t.Fatalf("err = %v, want exit 1 with errDisagree", err)
	}
	if !strings.Contains(errOut.String(), "DISAGREEMENT: the proxy allows, but the policy engine denies") || !strings.Contains(errOut.String(), "Ward bug") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	if !strings.HasPrefix(out.String(), "ALLOW  allowed: no filter denied (forwarded to inbound|80||)\n") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

const proxyCheckConfig = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: app}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: [web.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 10.0.0.8, serviceAccount: web, labels: {app: web, security.istio.io/tlsMode: istio}}
`

// TestProxyCheckOutput pins the text format: the proxy's verdict line in
// the policy engine's format, the proxy-level facts, the engine's verdict
// and the trace with -v.
func TestProxyCheckOutput(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(proxyCheckConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := newAuthzCheckCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--config", dir, "--to", "app/web-1", "--proxy-type", "sidecar", "--path", "/public/../admin", "-v"})
	err := cmd.Execute()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("err = %v, want exit 2; stderr:\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"DENY  denied by ns[app]-policy[deny-admin]-rule[0] (ward.authz.rbac.deny)\n",
		"proxy:        sidecar app/web-1 (generated from " + dir + ")\n",
		"enforcement:  native RBAC\n",
		"request:      plaintext 10.0.0.1:40000 -> 10.0.0.8:8080 HTTP/1.1 GET /public/../admin host web-1\n",
		"outcome:      Denied (status 403, rbac_access_denied)\n",
		"listener:     virtualInbound\n",
		"filter chain: inbound|8080||plaintext-http\n",
		"filter:       ward.authz.rbac.deny (HTTP filter envoy.extensions.filters.http.rbac.v3.RBAC)\n",
		"path:         /admin\n",
		"policy:       DENY  denied by ns[app]-policy[deny-admin]-rule[0] (Rego: agrees)\n",
		"trace:\n",
		`  HCM path "/public/../admin" → "/admin"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

const jwtCheckConfig = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: app}
spec:
  rules:
  - when: [{key: "request.auth.claims[groups]", values: ["admins"]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  jwtRules: [{issuer: "https://i.example", jwksUri: "https://i.example/jwks"}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: app}
spec: {address: 10.0.0.5, labels: {app: api}}
`

const apiService = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: app}
spec:
  hosts: [api.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: api}}
`

// runCheck runs `ward authz check` in process on a directory holding
// config and returns stdout, stderr and the exit status.
func runCheck(t *testing.T, config string, args ...string) (string, string, int) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := newAuthzCheckCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--config", dir}, args...))
	code := 0
	if err := cmd.Execute(); err != nil {
		code = 1
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
	}
	return out.String(), errOut.String(), code
}

// TestProxyCheckJWT: the proxy's jwt_authn and the engine agree on a
// trusted token (its claims reach the ALLOW rule), an untrusted issuer
// (401 before authorization) and no token, with native RBAC and through
// Ward's ext_authz server.
func TestProxyCheckJWT(t *testing.T) {
	for _, mode := range [][]string{nil, {"--ext-authz-target", "127.0.0.1:9191"}} {
		for _, tc := range []struct {
			claims string
			code   int
			want   string
		}{
			{`{"iss":"https://i.example","sub":"s","groups":["dev","admins"]}`, 0, "ALLOW  allowed by ns[app]-policy[admins]-rule[0]\n"},
			{`{"iss":"https://evil.example","sub":"s","groups":["admins"]}`, 2, "DENY  rejected by authentication: jwt_authn: "},
			{"", 2, "DENY  denied: no ALLOW policy matched ("},
		} {
			args := append([]string{"--to", "app/api-1", "--proxy-type", "sidecar"}, mode...)
			if tc.claims != "" {
				args = append(args, "--jwt-claims", tc.claims)
			}
			out, stderr, code := runCheck(t, jwtCheckConfig+apiService, args...)
			if code != tc.code || !strings.HasPrefix(out, tc.want) || !strings.Contains(out, "(Rego: agrees)") {
				t.Errorf("%v: exit %d, want %d and %q:\n%s%s", args, code, tc.code, tc.want, out, stderr)
			}
		}
	}
}

// TestProxyCheckUndeclaredPortIsTCP: a port no service declares reaches a
// sidecar's catch-all chain, which has no HTTP connection manager, so the
// engine judges the connection as TCP too and the two agree (the ALLOW on
// a JWT claim cannot match at L4).
func TestProxyCheckUndeclaredPortIsTCP(t *testing.T) {
	out, stderr, code := runCheck(t, jwtCheckConfig, "--to", "app/api-1", "--proxy-type", "sidecar",
		"--jwt-claims", `{"iss":"https://i.example","sub":"s","groups":["admins"]}`)
	if code != 2 || !strings.Contains(out, "filter chain: virtualInbound-catchall") || !strings.Contains(out, "(Rego: agrees)") ||
		!strings.Contains(stderr, "has no HTTP connection manager): the policy engine judges it as TCP too") {
		t.Errorf("exit %d:\n%s%s", code, out, stderr)
	}
}

func TestAckedDumpWarnings(t *testing.T) {
	d := ackedDump{View: "acked", Unacked: []string{"lds"}}
	d.Versions.Clusters, d.Latest.Clusters = "v1", "v2"
	d.Versions.Routes, d.Latest.Routes = "r1", "r1"
	got := d.warnings()
	if len(got) != 2 || !strings.HasPrefix(got[0], "lds: the proxy has ACKed no version") ||
		!strings.Contains(got[1], "cds: the proxy has not ACKed the latest version v2 (sent or pending): simulating the ACKed version v1") {
		t.Errorf("warnings = %q", got)
	}
	if w := (ackedDump{}).warnings(); len(w) != 1 || !strings.Contains(w[0], "does not keep ACKed config") {
		t.Errorf("no acked view: %q", w)
	}
}

// TestConnectedCheckUsesTheACKedConfig runs a check against a real xDS
// server's debug handler for a proxy that ACKed only clusters: the
// listeners it never ACKed are named and not simulated.
func TestConnectedCheckUsesTheACKedConfig(t *testing.T) {
	f := startXDS(t)
	id := "sidecar~10.0.0.5~app-1.test~test.svc.cluster.local"
	c := f.connect(t, id)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	r := c.recv()
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
	check := func() (string, string, error) {
		var out, errOut bytes.Buffer
		cmd := newAuthzCheckCmd()
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs([]string{"--server", f.debug, "--proxy", id, "--port", "80"})
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}
	waitSync(t, f.srv, "the cds ACK recorded", func(rows map[string]xds.SyncStatus) bool {
		return rows[id].Types["cds"].Acked == r.GetVersionInfo()
	})
	out, _, err := check()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("err = %v, want exit 2 (nothing listens: no listener was ACKed):\n%s", err, out)
	}
	for _, want := range []string{
		"DENY  no listener takes the connection",
		"warning: lds: the proxy has ACKed no version Ward still knows",
		"policy:       skipped: no --config",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAuthzCheckModeFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "app/web-1"}, "give --config DIR and --to"},
		{[]string{"--server", "http://127.0.0.1:1"}, "--server and --proxy go together"},
		{[]string{"--server", "http://127.0.0.1:1", "--proxy", "x", "--proxy-type", "sidecar"}, "describe an offline proxy"},
		{[]string{"--config", ".", "--to", "app/web-1", "--ext-authz-target", "127.0.0.1:9191"}, "describes the proxy of --proxy-type"},
	} {
		cmd := newAuthzCheckCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
