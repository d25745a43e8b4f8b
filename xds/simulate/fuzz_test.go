package simulate_test

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// FuzzSimulate runs random requests against the examples' proxies (native
// RBAC and ext_authz enforcement): the simulator must never panic and
// must always reach a verdict.
func FuzzSimulate(f *testing.F) {
	snap := examples(f)
	target, err := hooks.ParseExtAuthzTarget("127.0.0.1:9191")
	if err != nil {
		f.Fatal(err)
	}
	payments := &mesh.Proxy{ID: "payments-1.payments", Type: mesh.ProxySidecar, Namespace: "payments", ServiceAccount: "payments",
		Labels: mesh.Labels{"app": "payments", "version": "v1"}, IPs: []string{"127.0.0.30"}}
	var sims []*simulate.Simulator
	for _, p := range []*mesh.Proxy{reviewsV1, productpage, ingress, payments} {
		sims = append(sims, wardSim(f, snap, p, hooks.Config{}, nil), wardSim(f, snap, p, hooks.Config{ExtAuthz: target}, &denyAll{}))
	}
	f.Add(uint8(1), uint16(9080), true, "", "istio-h2,istio", spiffeProductpage, uint8(3), "POST", "/reviews.Reviews/Get", "reviews", "x-user-group", "testers", uint8(0), "", "")
	f.Add(uint8(0), uint16(8443), true, "pay.example.com", "h2", "", uint8(2), "GET", "/a/../admin", "pay.example.com", "", "", uint8(2), "https://idp.example.com", "alice")
	f.Add(uint8(2), uint16(9080), false, "", "", "", uint8(1), "GET", "//%2e%2E/%61dmin%2F?x=1", "reviews.bookinfo.svc.cluster.local:9080", "", "", uint8(1), "", "")
	f.Add(uint8(1), uint16(5432), true, "x", "istio", "spiffe://cluster.local/ns/a/sa/b", uint8(0), "", "", "", "", "", uint8(0), "", "")
	f.Fuzz(func(t *testing.T, capture uint8, port uint16, tls bool, sni, alpn, peer string, proto uint8, method, path, host, hk, hv string, jwtState uint8, iss, sub string) {
		req := simulate.Request{
			Capture: simulate.Capture(capture % 3), SrcIP: "10.9.9.9", SrcPort: 40000, DstIP: "127.0.0.21", DstPort: uint32(port),
			TLS: tls, SNI: sni, PeerURISAN: peer, Protocol: []simulate.Protocol{simulate.TCP, simulate.HTTP1, simulate.HTTP2, simulate.GRPC}[proto%4],
			Method: method, Path: path, Host: host, Headers: map[string]string{hk: hv},
			JWT: simulate.JWT{State: simulate.JWTState(jwtState % 3), Issuer: iss, Claims: map[string]any{"sub": sub, "aud": []any{"bookinfo"}}},
		}
		if alpn != "" {
			req.ALPN = strings.Split(alpn, ",")
		}
		for _, sim := range sims {
			if res := sim.Run(req); res.Verdict == "" {
				t.Fatalf("no verdict for %+v: %v", req, res.Trace)
			}
		}
	})
}
