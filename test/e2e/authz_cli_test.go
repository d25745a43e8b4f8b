package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// runAuthzCheck runs `ward authz check` and returns stdout and the exit
// status.
func runAuthzCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildWard(t), append([]string{"authz", "check"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		t.Logf("stderr: %s", stderr.String())
		if ee.ExitCode() == 1 {
			return string(out) + stderr.String(), 1
		}
		return string(out), ee.ExitCode()
	}
	t.Fatalf("ward authz check: %v", err)
	return "", 0
}

// TestAuthzCheckOnExamples answers questions about the shipped examples
// offline, with the deciding rule and exit status.
func TestAuthzCheckOnExamples(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	out, code := runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=reviews",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/productpage", "--method", "POST", "--path", "/reviews.Reviews/Get")
	if code != 0 || !strings.Contains(out, "ALLOW  allowed by ns[bookinfo]-policy[reviews-viewer]-rule[0]") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=reviews",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/ratings", "--method", "POST", "--path", "/reviews.Reviews/Get")
	if code != 2 || !strings.Contains(out, "no ALLOW policy matched (1 candidates)") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", examples, "--to", "bookinfo", "--label", "app=ratings", "-o", "json",
		"--from", "spiffe://cluster.local/ns/bookinfo/sa/reviews", "--method", "POST", "--path", "/admin/users")
	var res struct {
		Allowed  bool `json:"allowed"`
		Decision struct {
			Rule  string `json:"rule"`
			Audit []struct {
				Rule string `json:"rule"`
			} `json:"audit"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if code != 2 || res.Allowed || res.Decision.Rule != "ns[istio-system]-policy[deny-admin]-rule[0]" ||
		len(res.Decision.Audit) != 1 || res.Decision.Audit[0].Rule != "ns[bookinfo]-policy[audit-ratings-writes]-rule[0]" {
		t.Errorf("exit %d, result %+v", code, res)
	}
}

func TestAuthzCheckJWTAndErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`apiVersion: security.istio.io/v1
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
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", `{"iss":"https://i.example","sub":"s","groups":["dev","admins"]}`)
	if code != 0 || !strings.Contains(out, "ns[app]-policy[admins]-rule[0]") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	// A token from an issuer the workload does not trust never reaches
	// authorization: jwt_authn answers 401.
	out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", `{"iss":"https://evil.example","sub":"s","groups":["admins"]}`)
	if code != 2 || !strings.Contains(out, `rejected by authentication: issuer "https://evil.example" is not trusted`) {
		t.Errorf("untrusted issuer: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--show-rego"); code != 2 ||
		!strings.Contains(out, "denied: no ALLOW policy matched (1 candidates)") ||
		!strings.Contains(out, "# ns[app]-policy[admins]-rule[0]") || !strings.Contains(out, "package ward.policy.p_") {
		t.Errorf("no JWT: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/nope"); code != 1 || !strings.Contains(out, "no WorkloadEntry app/nope") {
		t.Errorf("unknown workload: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/api-1", "--jwt-claims", "{"); code != 1 {
		t.Errorf("bad claims: exit %d:\n%s", code, out)
	}
}

// TestAuthzCheckPorts judges a request on the protocol of the port it
// reaches (a TCP port is never judged as HTTP), defaults --port to the
// workload's only port and lists the ports when there are several.
func TestAuthzCheckPorts(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "p.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - to: [{operation: {methods: ["GET"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: app}
spec:
  hosts: [db.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: [web.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: app}
spec: {address: 10.0.0.6, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 10.0.0.7, labels: {app: web}}
`)
	// The only port is TCP: the ALLOW rule on methods is dropped (Istio's
	// TCP semantics), so even a "GET" is denied.
	out, code := runAuthzCheck(t, "--config", dir, "--to", "app/db-1", "--method", "GET")
	if code != 2 || !strings.Contains(out, "no ALLOW policy matched") {
		t.Errorf("TCP port judged as HTTP: exit %d:\n%s", code, out)
	}
	out, code = runAuthzCheck(t, "--config", dir, "--to", "app/web-1")
	if code != 1 || !strings.Contains(out, "several ports (8080/HTTP, 9090/GRPC)") {
		t.Errorf("several ports: exit %d:\n%s", code, out)
	}
	if out, code = runAuthzCheck(t, "--config", dir, "--to", "app/web-1", "--port", "9090"); code != 0 {
		t.Errorf("grpc port: exit %d:\n%s", code, out)
	}
}

func writeConfig(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// proxyCheckConfig is a small mesh for `ward authz check --proxy-type` and
// `--proxy`: a TCP database guarded by a DENY on a principal, a web
// workload with a DENY on /admin, an ingress gateway routing
// web.example.com to it with a DENY on /internal/*, and a proxyless gRPC
// greeter that only web may call.
const proxyCheckConfig = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/app/sa/evil"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: app}
spec:
  hosts: [db.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
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
metadata: {name: db-1, namespace: app}
spec: {address: 10.0.0.7, serviceAccount: db, labels: {app: db, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec: {address: 10.0.0.8, serviceAccount: web, labels: {app: web, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["web.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: ["web.example.com"]
  gateways: ["public"]
  http: [{route: [{destination: {host: web.app.svc.cluster.local, port: {number: 8080}}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw-1, namespace: app}
spec: {address: 10.0.0.9, serviceAccount: gw, labels: {istio: ingressgateway}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-internal, namespace: app}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/internal/*"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter, namespace: app}
spec:
  hosts: [greeter.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: greeter}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: greeter-1, namespace: app}
spec: {address: 10.0.0.11, serviceAccount: greeter, labels: {app: greeter}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: greeter, namespace: app}
spec:
  selector: {matchLabels: {app: greeter}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/app/sa/web"]}}]
    to: [{operation: {paths: ["/helloworld.Greeter/SayHello"]}}]
`

// TestAuthzCheckProxyOffline runs requests through the Envoy config Ward
// generates for a sidecar, a gateway and a proxyless gRPC server (the
// binary, offline): the proxy's verdict leads, with the listener, chain,
// deciding filter and cluster, and the policy engine agrees.
func TestAuthzCheckProxyOffline(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "mesh.yaml", proxyCheckConfig)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"TCP port: DENY by principal in the network RBAC filter",
			[]string{"--to", "app/db-1", "--from", "cluster.local/ns/app/sa/evil", "--proxy-type", "sidecar"}, 2,
			[]string{"DENY  denied by ns[app]-policy[deny-evil]-rule[0] (ward.authz.rbac.deny)", "request:      mTLS as spiffe://cluster.local/ns/app/sa/evil 10.0.0.1:40000 -> 10.0.0.7:5432 TCP",
				"filter chain: inbound|5432||mtls-tcp", "filter:       ward.authz.rbac.deny (network filter envoy.extensions.filters.network.rbac.v3.RBAC)",
				"policy:       DENY  denied by ns[app]-policy[deny-evil]-rule[0] (Rego: agrees)"}},
		{"TCP port: another principal is forwarded",
			[]string{"--to", "app/db-1", "--from", "cluster.local/ns/app/sa/web", "--proxy-type", "sidecar"}, 0,
			[]string{"ALLOW  allowed: no filter denied (forwarded to inbound|5432||)", "cluster:      inbound|5432||", "(Rego: agrees)"}},
		{"path normalisation: /public/../admin is /admin",
			[]string{"--to", "app/web-1", "--path", "/public/../admin", "--proxy-type", "sidecar"}, 2,
			[]string{"DENY  denied by ns[app]-policy[deny-admin]-rule[0] (ward.authz.rbac.deny)", "path:         /admin",
				"filter:       ward.authz.rbac.deny (HTTP filter envoy.extensions.filters.http.rbac.v3.RBAC)", "(Rego: agrees)"}},
		{"path normalisation through Ward's ext_authz server",
			[]string{"--to", "app/web-1", "--path", "/%61dmin", "--proxy-type", "sidecar", "--ext-authz-target", "127.0.0.1:9191", "-v"}, 2,
			[]string{"DENY  denied by ns[app]-policy[deny-admin]-rule[0] (ward.authz.ext_authz)", "enforcement:  ext_authz (Ward's engine, in process)",
				"ext_authz:    ward.authz.ext_authz: DENY ns[app]-policy[deny-admin]-rule[0]", "(Rego: agrees)", "trace:", `HCM path "/%61dmin" → "/admin"`}},
		{"gateway: routed to the backend",
			[]string{"--to", "app/gw-1", "--host", "web.example.com", "--path", "/public/x", "--proxy-type", "gateway"}, 0,
			[]string{"ALLOW  allowed: no filter denied (forwarded to outbound|8080||web.app.svc.cluster.local)", "listener:     0.0.0.0_8080",
				"route:        http.8080 / web.example.com:8080 / ", "(Rego: agrees)"}},
		{"gateway: DENY on the gateway's own policy",
			[]string{"--to", "app/gw-1", "--host", "web.example.com", "--path", "/internal/../internal/x", "--proxy-type", "gateway"}, 2,
			[]string{"DENY  denied by ns[app]-policy[gw-internal]-rule[0] (ward.authz.rbac.deny)", "path:         /internal/x", "(Rego: agrees)"}},
		{"gateway: an unknown host has no route, which is not an authorization decision",
			[]string{"--to", "app/gw-1", "--host", "other.example.com", "--proxy-type", "gateway"}, 2,
			[]string{"DENY  no route (404, no_virtual_host)", "not compared: the proxy's outcome is not an authorization decision"}},
		{"grpc: the allowed caller",
			[]string{"--to", "app/greeter-1", "--from", "cluster.local/ns/app/sa/web", "--method", "POST", "--path", "/helloworld.Greeter/SayHello", "--proxy-type", "grpc"}, 0,
			[]string{"ALLOW  allowed by ns[app]-policy[greeter]-rule[0]", "listener:     grpc/server?xds.resource.listening_address=10.0.0.11:50051", "(Rego: agrees)"}},
		{"grpc: another caller",
			[]string{"--to", "app/greeter-1", "--from", "cluster.local/ns/app/sa/db", "--method", "POST", "--path", "/helloworld.Greeter/SayHello", "--proxy-type", "grpc"}, 2,
			[]string{"DENY  denied: no ALLOW policy matched (ward.authz.rbac.allow)", "policy:       DENY  denied: no ALLOW policy matched (1 candidates) (Rego: agrees)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runAuthzCheck(t, append([]string{"--config", dir}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	out, code := runAuthzCheck(t, "--config", dir, "--to", "app/db-1", "--from", "cluster.local/ns/app/sa/evil", "--proxy-type", "sidecar", "-o", "json")
	var res struct {
		Allowed bool
		Agrees  bool
		Proxy   struct {
			Facts struct{ Filter, FilterType, Chain string }
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if code != 2 || res.Allowed || !res.Agrees || res.Proxy.Facts.FilterType != "network filter envoy.extensions.filters.network.rbac.v3.RBAC" {
		t.Errorf("-o json: exit %d, %+v", code, res)
	}
}

// serveConfig starts `ward serve` on dir, every server on a free loopback
// port, and returns its debug URL and a plaintext xDS client.
func serveConfig(t *testing.T, dir string) (string, *grpc.ClientConn) {
	t.Helper()
	p := startWard(t, "serve", "--config", dir, "--state", t.TempDir(),
		"--debug-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--secure-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0")
	m := p.waitLine(t, regexp.MustCompile(`debug_addr=(\S+) xds_addr=(\S+)`), time.Minute)
	cc, err := grpc.NewClient(m[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return "http://" + m[1], cc
}

// adsRecv waits (bounded) for the stream's next response.
func adsRecv(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discovery.DiscoveryResponse {
	t.Helper()
	ch := make(chan *discovery.DiscoveryResponse, 1)
	go func() {
		r, err := st.Recv()
		if err != nil {
			close(ch)
			return
		}
		ch <- r
	}()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("ADS stream closed")
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no ADS response within 30s")
	}
	return nil
}

// ackAll ACKs first, then asks for listeners and routes and ACKs them:
// the stream then holds ACKed cds, lds and rds.
func ackAll(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, first *discovery.DiscoveryResponse) {
	t.Helper()
	ack := func(r *discovery.DiscoveryResponse) {
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	ack(first)
	for _, url := range []string{resource.ListenerType, resource.RouteType} {
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: url}); err != nil {
			t.Fatal(err)
		}
		r := adsRecv(t, st)
		if r.GetTypeUrl() != url {
			t.Fatalf("asked for %s, got %s", url, r.GetTypeUrl())
		}
		ack(r)
	}
}

// TestAuthzCheckConnectedProxy runs requests through the config a proxy
// connected to a real `ward serve` ACKed: the verdict agrees with the
// policy engine over the same directory, and after a config change the
// proxy has not ACKed, the check still judges what the proxy holds and
// says it lags.
func TestAuthzCheckConnectedProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	dir := t.TempDir()
	writeConfig(t, dir, "mesh.yaml", proxyCheckConfig)
	server, cc := serveConfig(t, dir)
	const id = "sidecar~10.0.0.7~db-1.app~app.svc.cluster.local"
	st, first := openADS(t, cc, &core.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("app"), "SERVICE_ACCOUNT": structpb.NewStringValue("db"),
		"LABELS": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"app": structpb.NewStringValue("db"), "security.istio.io/tlsMode": structpb.NewStringValue("istio")}}),
	}}})
	ackAll(t, st, first)
	check := func(args ...string) (string, int) {
		t.Helper()
		return runAuthzCheck(t, append([]string{"--server", server, "--proxy", id}, args...)...)
	}
	// ACKs are recorded asynchronously: bounded retries until no type is
	// reported un-ACKed.
	var out string
	var code int
	eventually(t, "the proxy's ACKs recorded", func() error {
		if out, code = check("--from", "cluster.local/ns/app/sa/evil", "--tcp"); strings.Contains(out, "warning:") {
			return fmt.Errorf("%w:\n%s", errNotYet, out)
		}
		return nil
	})
	for _, want := range []string{"DENY  denied by ns[app]-policy[deny-evil]-rule[0] (ward.authz.rbac.deny)",
		"filter chain: inbound|5432||mtls-tcp", "policy:       skipped: no --config"} {
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	out, code = check("--config", dir, "--from", "cluster.local/ns/app/sa/evil")
	if code != 2 || !strings.Contains(out, "policy:       DENY  denied by ns[app]-policy[deny-evil]-rule[0] (Rego: agrees)") ||
		!strings.Contains(out, "workload:     app map[app:db security.istio.io/tlsMode:istio]") {
		t.Errorf("with --config: exit %d:\n%s", code, out)
	}

	// A new DENY the proxy never ACKs: it still forwards web's connections,
	// the check says so and names the lag; against the new directory the
	// engine disagrees, and the lag, not a Ward bug, is given as the cause.
	writeConfig(t, dir, "deny-web.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-web, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/app/sa/web"]}}]
`)
	eventually(t, "the new listeners generated and not ACKed", func() error {
		if out, code = check("--from", "cluster.local/ns/app/sa/web", "--tcp"); !strings.Contains(out, "lds: the proxy has not ACKed the latest version") {
			return fmt.Errorf("%w:\n%s", errNotYet, out)
		}
		return nil
	})
	if code != 0 || !strings.Contains(out, "ALLOW  allowed: no filter denied (forwarded to inbound|5432||)") {
		t.Errorf("the ACKed config forwards web: exit %d:\n%s", code, out)
	}
	out, code = check("--config", dir, "--from", "cluster.local/ns/app/sa/web")
	if code != 1 || !strings.Contains(out, "DISAGREEMENT: the proxy allows, but the policy engine denies") || !strings.Contains(out, "has not ACKed the latest config") {
		t.Errorf("lagging proxy vs new policy: exit %d:\n%s", code, out)
	}
}
