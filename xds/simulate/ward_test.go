package simulate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// These tests run Ward's real output (xds/translate with the security
// hooks) through the simulator.

func examples(t testing.TB) *mesh.Snapshot {
	t.Helper()
	res, err := file.Load("../../examples")
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load examples: %v %v", err, res.Errs())
	}
	return res.Snapshot
}

// wardSim generates p's resources from snap and returns a simulator over
// them.
func wardSim(t testing.TB, snap *mesh.Snapshot, p *mesh.Proxy, cfg hooks.Config, checker simulate.Checker) *simulate.Simulator {
	t.Helper()
	ix := translate.NewIndex(snap)
	res := translate.Generate(ix, ix.Scope(p), hooks.New(cfg))
	if err := res.Validate(); err != nil {
		t.Fatalf("resources for %s do not validate: %v", p.ID, err)
	}
	return simulate.New(simulate.Config{Resources: simulate.Resources{Listeners: res.Listeners, Routes: res.Routes, Clusters: res.Clusters}, Checker: checker})
}

var (
	reviewsV1 = &mesh.Proxy{ID: "reviews-v1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", ServiceAccount: "reviews",
		Labels: mesh.Labels{"app": "reviews", "version": "v1"}, IPs: []string{"127.0.0.21"}}
	productpage = &mesh.Proxy{ID: "productpage-1.bookinfo", Type: mesh.ProxySidecar, Namespace: "bookinfo", ServiceAccount: "productpage",
		Labels: mesh.Labels{"app": "productpage", "version": "v1"}, IPs: []string{"127.0.0.20"}}
	ingress = &mesh.Proxy{ID: "ingressgateway-1.istio-system", Type: mesh.ProxyRouter, Namespace: "istio-system",
		ServiceAccount: "ingressgateway", Labels: mesh.Labels{"istio": "ingressgateway"}, IPs: []string{"127.0.0.10"}}
)

const (
	spiffeProductpage = "spiffe://cluster.local/ns/bookinfo/sa/productpage"
	spiffeDetails     = "spiffe://cluster.local/ns/bookinfo/sa/details"
)

// inboundGRPC is an mTLS gRPC call captured into reviews-v1's sidecar.
func inboundGRPC(peer, path string) simulate.Request {
	return simulate.Request{Capture: simulate.Inbound, SrcIP: "127.0.0.20", SrcPort: 40000, DstIP: "127.0.0.21", DstPort: 9080,
		TLS: true, ALPN: []string{"istio-h2", "istio"}, PeerURISAN: peer, Protocol: simulate.GRPC, Method: "POST", Path: path,
		Host: "reviews.bookinfo.svc.cluster.local:9080"}
}

func TestWardSidecarInbound(t *testing.T) {
	sim := wardSim(t, examples(t), reviewsV1, hooks.Config{}, nil)
	plain := inboundGRPC("", "/reviews.Reviews/Get")
	plain.TLS, plain.ALPN = false, nil
	cases := []struct {
		name    string
		req     simulate.Request
		verdict simulate.Verdict
		filter  string
		policy  string
	}{
		{"productpage may call Reviews", inboundGRPC(spiffeProductpage, "/reviews.Reviews/Get"), simulate.Allowed, "", "ns[bookinfo]-policy[reviews-viewer]-rule[0]"},
		{"details may not", inboundGRPC(spiffeDetails, "/reviews.Reviews/Get"), simulate.Denied, "ward.authz.rbac.allow", ""},
		{"other path not allowed", inboundGRPC(spiffeProductpage, "/other.Service/Get"), simulate.Denied, "ward.authz.rbac.allow", ""},
		{"mesh-wide deny-admin", inboundGRPC(spiffeProductpage, "/admin"), simulate.Denied, "ward.authz.rbac.deny", "ns[istio-system]-policy[deny-admin]-rule[0]"},
		{"STRICT: plaintext finds no chain", plain, simulate.NoChain, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := sim.Run(tc.req)
			if res.Verdict != tc.verdict || res.Filter != tc.filter || res.Policy != tc.policy {
				t.Errorf("%s policy=%q; want %s by %q policy %q\n%s", res, res.Policy, tc.verdict, tc.filter, tc.policy, strings.Join(res.Trace, "\n"))
			}
			if tc.verdict == simulate.Allowed && res.Cluster != "inbound|9080||" {
				t.Errorf("upstream %q", res.Cluster)
			}
		})
	}
}

func TestWardSidecarOutbound(t *testing.T) {
	sim := wardSim(t, examples(t), productpage, hooks.Config{}, nil)
	req := simulate.Request{Capture: simulate.Outbound, SrcIP: "127.0.0.20", SrcPort: 40000, DstIP: "127.0.0.21", DstPort: 9080,
		Protocol: simulate.GRPC, Path: "/reviews.Reviews/Get", Host: "reviews.bookinfo.svc.cluster.local:9080"}
	res := sim.Run(req)
	if res.Verdict != simulate.Allowed || len(res.Weighted) != 2 || !strings.Contains(res.Weighted[0].Name, "|v1|") || res.Weighted[0].Weight != 80 {
		t.Errorf("canary: %s %v\n%s", res, res.Weighted, strings.Join(res.Trace, "\n"))
	}
	req.Headers = map[string]string{"x-user-group": "testers"}
	if res := sim.Run(req); !strings.Contains(res.Cluster, "|v3|") {
		t.Errorf("testers: %s", res)
	}
	req.Host, req.DstIP = "evil.example.com", "203.0.113.1"
	if res := sim.Run(req); res.Verdict == simulate.Allowed && res.Cluster != "BlackHoleCluster" {
		t.Errorf("REGISTRY_ONLY let an unknown host through: %s", res)
	}
}

func TestWardGateway(t *testing.T) {
	sim := wardSim(t, examples(t), ingress, hooks.Config{}, nil)
	req := func(host string, jwt simulate.JWT) simulate.Request {
		return simulate.Request{SrcIP: "203.0.113.7", SrcPort: 50000, DstIP: "127.0.0.10", DstPort: 8443, TLS: true, SNI: host,
			ALPN: []string{"h2"}, Protocol: simulate.HTTP2, Method: "GET", Path: "/", Host: host, JWT: jwt}
	}
	idp := simulate.JWT{State: simulate.VerifiedToken, Issuer: "https://idp.example.com", Claims: map[string]any{"sub": "alice", "aud": "payments"}}
	cases := []struct {
		name   string
		req    simulate.Request
		status int
		filter string
	}{
		{"bookinfo without token", req("bookinfo.example.com", simulate.JWT{}), 200, ""},
		{"payments without token", req("pay.example.com", simulate.JWT{}), 403, "ward.authz.rbac.allow"},
		// Authorised, but no VirtualService binds pay.example.com to the
		// gateway: the router answers 404.
		{"payments with token", req("pay.example.com", idp), 404, ""},
		{"invalid token", req("bookinfo.example.com", simulate.JWT{State: simulate.InvalidToken}), 401, "envoy.filters.http.jwt_authn"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := sim.Run(tc.req)
			if res.Status != tc.status || res.Filter != tc.filter {
				t.Errorf("%s; want %d by %q\n%s", res, tc.status, tc.filter, strings.Join(res.Trace, "\n"))
			}
		})
	}
}
