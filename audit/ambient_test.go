package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh/file"
)

// Ambient-enrolled workloads are in mTLS coverage as Istio ambient has
// them: they hold a mesh identity through the node proxy (no
// MTLS-NO-IDENTITY), STRICT refuses plaintext on their ports and
// PERMISSIVE accepts it; the report says "ambient" and counts them.
func TestAmbientWorkloadsInMTLSCoverage(t *testing.T) {
	dir := t.TempDir()
	yaml := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: old, namespace: legacy}
spec:
  hosts: [old.legacy.svc.cluster.local]
  ports: [{number: 80, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: old}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 10.0.0.2, serviceAccount: db, labels: {app: db, istio.io/dataplane-mode: ambient, ward.io/node: n1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: old-1, namespace: legacy}
spec: {address: 10.0.0.3, serviceAccount: old, labels: {app: old, istio.io/dataplane-mode: ambient, ward.io/node: n1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: legacy}
spec: {address: 10.0.0.4, labels: {app: vm}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := file.Load(dir)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("load: %v %v", err, res.Errs())
	}
	r := Build(Input{Snapshot: res.Snapshot, Now: auditNow})
	got := map[string]MTLSWorkload{}
	for _, m := range r.MTLS {
		got[m.Workload] = m
	}
	db, old, vm := got["db-1"], got["old-1"], got["vm-1"]
	if db.Dataplane != "ambient" || !db.HasIdentity || db.Identity != "spiffe://cluster.local/ns/shop/sa/db" ||
		len(db.Ports) != 1 || db.Ports[0].Mode != "STRICT" || db.Ports[0].Plaintext {
		t.Errorf("db (ambient, STRICT) = %+v", db)
	}
	if old.Dataplane != "ambient" || !old.HasIdentity || len(old.Ports) != 1 || !old.Ports[0].Plaintext {
		t.Errorf("old (ambient, PERMISSIVE: accepts plaintext callers) = %+v", old)
	}
	if vm.Dataplane != "none" || vm.HasIdentity {
		t.Errorf("vm (not enrolled) = %+v", vm)
	}
	if r.Summary.Ambient != 2 || r.Summary.NoIdentity != 1 || r.Summary.StrictPorts != 1 || r.Summary.PlaintextPorts != 1 {
		t.Errorf("summary = %+v", r.Summary)
	}
	for _, f := range r.Findings {
		if f.Code == "MTLS-NO-IDENTITY" && f.Object != "legacy/vm-1" {
			t.Errorf("ambient workload flagged without identity: %+v", f)
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, r, "text"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "ambient workloads") || !strings.Contains(buf.String(), "ambient") {
		t.Errorf("text report lacks the ambient column/count:\n%s", buf.String())
	}
}
