package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

func snapshot(t testing.TB, meshYAML, policies string) *mesh.Snapshot {
	t.Helper()
	var mc mesh.MeshConfig
	var cfgs []*mesh.Config
	for _, src := range []string{meshYAML, policies} {
		if src == "" {
			continue
		}
		cs, m, err := schema.DecodeAll([]byte(src), mesh.Source{})
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			mc = *m
		}
		cfgs = append(cfgs, cs...)
	}
	return mesh.NewSnapshot(mc, cfgs)
}

// start serves s on a loopback port and returns a connected client; the
// test's cleanup stops both.
func start(t testing.TB, s *Server) authv3.AuthorizationClient {
	t.Helper()
	c, stop := serveLoopback(t, s)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// serveLoopback serves s on a loopback port and returns a connected
// client and a stop that closes the client, cancels Serve and reports
// its error, or that it did not return within 5s.
func serveLoopback(t testing.TB, s *Server) (authv3.AuthorizationClient, func() error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop := func() error {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("server did not stop within 5s")
		}
	}
	return authv3.NewAuthorizationClient(conn), stop
}

const policies = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-reader, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]
    to: [{operation: {methods: ["GET"]}}]
  - when: [{key: "request.auth.claims[role]", values: ["admin"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-deny-get
  namespace: shop
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/secret"]}}]}]
`

func check(ns string, labels string, principal, method, path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Principal: principal, Address: addr("10.0.0.1", 5000)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.2", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "cart", Headers: map[string]string{":method": method, ":path": path, "authorization": "Bearer secret-token"}}},
		ContextExtensions: map[string]string{authz.ContextNamespace: ns, authz.ContextLabels: labels},
	}}
}

func addr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func newServer(t testing.TB, cfg Config, meshYAML, pols string) *Server {
	t.Helper()
	if cfg.Timeout == 0 {
		// Not the 50ms default: on a loaded machine (or under -race) a
		// fail-closed timeout is not what these tests look for.
		cfg.Timeout = time.Minute
	}
	s := New(cfg)
	if err := s.Update(snapshot(t, meshYAML, pols)); err != nil {
		t.Fatal(err)
	}
	return s
}

// reasonOf is a denial's x-ward-authz-reason header.
func reasonOf(r *authv3.CheckResponse) string { return reasonIn(r.GetDeniedResponse().GetHeaders()) }

// okReason is an allow's x-ward-authz-reason response header.
func okReason(r *authv3.CheckResponse) string {
	return reasonIn(r.GetOkResponse().GetResponseHeadersToAdd())
}

func reasonIn(hs []*corev3.HeaderValueOption) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == "x-ward-authz-reason" {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func TestAllowDenyOverGRPC(t *testing.T) {
	var logbuf syncBuffer
	dl, err := decisionlog.New(decisionlog.Config{Writer: &logbuf, Headers: []string{"authorization"}})
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, newServer(t, Config{Decisions: dl}, "", policies))
	ctx := context.Background()

	resp, err := c.Check(ctx, check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(code.Code_OK) || resp.GetOkResponse() == nil {
		t.Fatalf("want allow, got %v", resp)
	}
	if got := resp.GetDynamicMetadata().GetFields()["ward_rule"].GetStringValue(); got != "ns[shop]-policy[allow-reader]-rule[0]" {
		t.Errorf("ward_rule = %q", got)
	}

	resp, err = c.Check(ctx, check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "POST", "/items"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(code.Code_PERMISSION_DENIED) || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("want 403 deny, got %v", resp)
	}
	if got := reasonOf(resp); got != "denied: no ALLOW policy matched (1 candidates)" {
		t.Errorf("reason header = %q", got)
	}
	if !strings.Contains(resp.GetStatus().GetMessage(), "ward_authz_denied") {
		t.Errorf("status message = %q", resp.GetStatus().GetMessage())
	}
	if s := logbuf.String(); strings.Count(s, "\n") != 2 || strings.Contains(s, "secret-token") || !strings.Contains(s, `"rule":"ns[shop]-policy[allow-reader]-rule[0]"`) {
		t.Errorf("decision log:\n%s", s)
	}
}

func TestJWTClaimsFromJWTAuthnMetadata(t *testing.T) {
	c := start(t, newServer(t, Config{}, "", policies))
	req := check("shop", `{"app":"cart"}`, "", "DELETE", "/items")
	payload, _ := structpb.NewStruct(map[string]any{"payload": map[string]any{"iss": "i", "sub": "s", "role": "admin"}})
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{authz.JWTFilter: payload}}
	resp, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDynamicMetadata().GetFields()["ward_rule"].GetStringValue() != "ns[shop]-policy[allow-reader]-rule[1]" {
		t.Fatalf("want allow by the claim rule, got %v", resp)
	}
	// A payload under another key is not a verified JWT.
	req = check("shop", `{"app":"cart"}`, "", "DELETE", "/items")
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"other": payload}}
	if resp, _ = c.Check(context.Background(), req); resp.GetStatus().GetCode() == int32(code.Code_OK) {
		t.Fatal("claims outside jwt_authn metadata were trusted")
	}
}

func TestDryRunNeverEnforces(t *testing.T) {
	c := start(t, newServer(t, Config{}, "", policies))
	resp, err := c.Check(context.Background(), check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/secret"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(code.Code_OK) || !resp.GetDynamicMetadata().GetFields()["ward_dry_run"].GetBoolValue() {
		t.Fatalf("want allow marked dry-run, got %v", resp)
	}
}

func TestFailsClosed(t *testing.T) {
	errMesh := `apiVersion: config.wardmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: broken
    rego:
      module: |
        package envoy.authz
        import rego.v1
        allow := true if input.attributes
        allow := false if input.attributes
  - name: slow
    rego:
      module: |
        package envoy.authz
        import rego.v1
        allow if count([x | some x in numbers.range(1, 50000000)]) < 0
`
	customs := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: a}
spec: {action: CUSTOM, provider: {name: broken}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: slow, namespace: b}
spec: {action: CUSTOM, provider: {name: slow}, rules: [{}]}
`
	s := newServer(t, Config{Timeout: 20 * time.Millisecond}, errMesh, customs)
	c := start(t, s)
	empty := start(t, New(Config{}))
	ctx := context.Background()
	cases := []struct {
		name   string
		client authv3.AuthorizationClient
		req    *authv3.CheckRequest
		status int32
		http   uint32
	}{
		{"no attributes", c, &authv3.CheckRequest{}, int32(code.Code_INVALID_ARGUMENT), 400},
		{"no workload", c, check("", "", "", "GET", "/"), int32(code.Code_INVALID_ARGUMENT), 400},
		{"bad labels", c, check("a", "{not json", "", "GET", "/"), int32(code.Code_INVALID_ARGUMENT), 400},
		{"bad source address", c, func() *authv3.CheckRequest {
			r := check("a", "", "", "GET", "/")
			r.Attributes.Source.Address = addr("not-an-ip", 1)
			return r
		}(), int32(code.Code_INVALID_ARGUMENT), 400},
		{"http without method", c, check("x", "", "", "", "/"), int32(code.Code_INVALID_ARGUMENT), 400},
		{"opa error", c, check("a", "", "", "GET", "/"), int32(code.Code_PERMISSION_DENIED), 403},
		{"opa timeout", c, check("b", "", "", "GET", "/"), int32(code.Code_PERMISSION_DENIED), 403},
		{"no snapshot yet", empty, check("a", "", "", "GET", "/"), int32(code.Code_PERMISSION_DENIED), 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Check(ctx, tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error (Envoy's failure mode would decide): %v", err)
			}
			if resp.GetStatus().GetCode() != tc.status || uint32(resp.GetDeniedResponse().GetStatus().GetCode()) != tc.http {
				t.Errorf("got status %d http %d, want %d %d: %v", resp.GetStatus().GetCode(), resp.GetDeniedResponse().GetStatus().GetCode(), tc.status, tc.http, resp)
			}
		})
	}
}

func TestTCPCheck(t *testing.T) {
	c := start(t, newServer(t, Config{}, "", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: data}
spec:
  rules:
  - from: [{source: {namespaces: ["app"]}}]
    to: [{operation: {ports: ["5432"]}}]
`))
	req := func(p string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:            &authv3.AttributeContext_Peer{Principal: p, Address: addr("10.0.0.1", 5000)},
			Destination:       &authv3.AttributeContext_Peer{Address: addr("10.0.0.2", 5432)},
			ContextExtensions: map[string]string{authz.ContextNamespace: "data"},
		}}
	}
	ok, err := c.Check(context.Background(), req("spiffe://cluster.local/ns/app/sa/x"))
	if err != nil || ok.GetStatus().GetCode() != 0 || ok.GetHttpResponse() != nil {
		t.Fatalf("want bare OK, got %v %v", ok, err)
	}
	no, err := c.Check(context.Background(), req("spiffe://cluster.local/ns/web/sa/x"))
	if err != nil || no.GetStatus().GetCode() != int32(code.Code_PERMISSION_DENIED) || no.GetHttpResponse() != nil {
		t.Fatalf("want bare PERMISSION_DENIED, got %v %v", no, err)
	}
}

// TestConcurrentChecksAndUpdates checks decisions stay right while the
// policy snapshot is swapped under load.
func TestConcurrentChecksAndUpdates(t *testing.T) {
	// A generous timeout: on a loaded CI machine the default 50ms could
	// expire and fail closed, which is not what this test is about.
	s := newServer(t, Config{Timeout: time.Minute}, "", policies)
	c := start(t, s)
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				method := "GET"
				if (g+i)%2 == 0 {
					method = "POST"
				}
				resp, err := c.Check(context.Background(), check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", method, "/x"))
				if err != nil {
					errs <- err.Error()
					continue
				}
				if got := resp.GetStatus().GetCode() == 0; got != (method == "GET") {
					errs <- method + " decided wrongly: " + resp.GetStatus().GetMessage()
				}
			}
		}(g)
	}
	for i := 0; i < 5; i++ {
		if err := s.Update(snapshot(t, "", policies)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMetricsCountDecisions(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := start(t, newServer(t, Config{Registry: reg}, "", policies))
	for _, m := range []string{"GET", "POST", "POST"} {
		if _, err := c.Check(context.Background(), check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", m, "/x")); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "ward_authz_decision") {
			continue // preparation metrics: warm_test.go
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"ward_authz_decisions_total,allowed=false,reason=no_allow_match": 2,
		"ward_authz_decisions_total,allowed=true,reason=allow":           1,
		"ward_authz_decision_seconds":                                    3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
