package node

import (
	"net/netip"
	"testing"
)

const registryConfig = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 10.254.0.21, labels: {app: db, istio.io/dataplane-mode: ambient, ward.io/node: n2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-2, namespace: shop}
spec: {address: 10.254.0.22, labels: {app: db, istio.io/dataplane-mode: ambient, ward.io/node: n1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy, namespace: shop}
spec: {address: 10.254.0.30, labels: {app: legacy, ward.io/node: n1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  addresses: [10.254.100.1]
  ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 9000}]
  resolution: STATIC
  workloadSelector: {labels: {app: db}}
`

func TestRegistry(t *testing.T) {
	r := newRegistry(snapshotOf(t, "", registryConfig))
	if got := r.local("n1"); len(got) != 1 || got[0].Name != "db-2" {
		t.Errorf("local(n1) = %v, want only db-2 (legacy is not ambient)", got)
	}
	// The VIP alternates over both endpoints, on the target port.
	seen := map[string]int{}
	for range 4 {
		rt, ok := r.resolve(netip.MustParseAddrPort("10.254.100.1:5432"))
		if !ok || rt.dest == nil || rt.target.Port() != 9000 || rt.target.Addr().String() != rt.dest.Address {
			t.Fatalf("resolve VIP = %+v, %v", rt, ok)
		}
		seen[rt.dest.Name]++
	}
	if seen["db-1"] != 2 || seen["db-2"] != 2 {
		t.Errorf("round robin = %v, want 2 each", seen)
	}
	if _, ok := r.resolve(netip.MustParseAddrPort("10.254.100.1:5433")); !ok {
		t.Error("an undeclared VIP port should pass through, not fail")
	}
	rt, _ := r.resolve(netip.MustParseAddrPort("10.254.0.30:80"))
	if rt.dest == nil || Ambient(rt.dest) {
		t.Errorf("legacy workload = %+v, want a known, non-ambient destination (plaintext)", rt.dest)
	}
	rt, _ = r.resolve(netip.MustParseAddrPort("192.0.2.1:443"))
	if rt.dest != nil || rt.target.String() != "192.0.2.1:443" {
		t.Errorf("unknown destination = %+v, want passthrough unchanged", rt)
	}
}
