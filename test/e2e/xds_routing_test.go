package e2e

import (
	"context"
	"math"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const echoHost = "echo.test.svc.cluster.local"

const echoSubsets = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo.test.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
`

// versions starts echo backends (one per version) behind Ward with the
// given routing rules.
func versions(t *testing.T, rules string, vs ...string) (*xdsMesh, map[string]*backend) {
	t.Helper()
	m := newXDSMesh(t)
	bs := map[string]*backend{}
	lis := map[string]net.Listener{}
	cfg := echoService(echoHost, "test", "echo") + echoSubsets
	for _, v := range vs {
		bs[v], lis[v] = m.listen("echo-" + v)
		cfg += workloadEntry("echo-"+v, "test", bs[v].port, map[string]string{"app": "echo", "version": v})
	}
	m.apply(cfg + rules)
	for _, v := range vs {
		m.serve(bs[v], lis[v], "test", map[string]string{"app": "echo", "version": v})
	}
	return m, bs
}

func TestXDSWeightedSplitAndHeaderMatch(t *testing.T) {
	m, _ := versions(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  http:
  - name: testers
    match: [{headers: {x-user-group: {exact: testers}}}]
    route: [{destination: {host: echo.test.svc.cluster.local, subset: v3}}]
  - name: canary
    route:
    - {destination: {host: echo.test.svc.cluster.local, subset: v1}, weight: 80}
    - {destination: {host: echo.test.svc.cluster.local, subset: v2}, weight: 20}
`, "v1", "v2", "v3")
	c, _ := m.client("caller", "test", echoHost+":7070")
	ctx := context.Background()
	const n = 2000
	got := map[string]int{}
	for range n {
		name, err := call(ctx, c)
		if err != nil {
			t.Fatalf("rpc: %v", err)
		}
		got[name]++
	}
	v1 := float64(got["echo-v1"]) / n
	if math.Abs(v1-0.80) > 0.05 || got["echo-v1"]+got["echo-v2"] != n {
		t.Fatalf("split over %d RPCs = %v, want 80/20 ±5%% across v1/v2 only", n, got)
	}
	t.Logf("split over %d RPCs: %v", n, got)
	testers := metadata.AppendToOutgoingContext(ctx, "x-user-group", "testers")
	for range 50 {
		if name, err := call(testers, c); err != nil || name != "echo-v3" {
			t.Fatalf("header-matched call went to %q (err %v), want echo-v3", name, err)
		}
	}
}

func TestXDSFaultAbortHalf(t *testing.T) {
	m, _ := versions(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  http:
  - route: [{destination: {host: echo.test.svc.cluster.local}}]
    fault:
      abort: {grpcStatus: ABORTED, percentage: {value: 50}}
`, "v1")
	c, _ := m.client("caller", "test", echoHost+":7070")
	const n = 2000
	aborted := 0
	for range n {
		_, err := call(context.Background(), c)
		switch status.Code(err) {
		case codes.OK:
		case codes.Aborted:
			aborted++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	t.Logf("aborted %d of %d", aborted, n)
	if f := float64(aborted) / n; math.Abs(f-0.5) > 0.05 {
		t.Fatalf("aborted %d of %d (%.1f%%), want 50%% ±5%%", aborted, n, 100*f)
	}
}
