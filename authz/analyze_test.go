package authz

import (
	"strings"
	"testing"

	"github.com/wardmesh/ward/mesh"
)

func TestAnalyze(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: data}
spec:
  hosts: [db.data.internal]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: data}
spec: {address: 10.0.0.9, labels: {app: db}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: elsewhere, namespace: web}
spec:
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: data}
spec: {action: CUSTOM, provider: {name: missing}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: data}
spec: {rules: [{to: [{operation: {ports: ["x"]}}]}]}
`)
	var got []string
	for _, f := range Analyze(mesh.NewSnapshot(mesh.MeshConfig{}, cfgs)) {
		got = append(got, f.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"warning: AuthorizationPolicy data/allow-get: ns[data]-policy[allow-get]-rule[0]: uses HTTP-only fields; on TCP ports this ALLOW rule is dropped",
		`error: AuthorizationPolicy data/custom: extension provider "missing" is not defined`,
		"error: AuthorizationPolicy data/broken: AuthorizationPolicy data/broken: spec.rules[0].to[0].operation.ports[0]",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("findings lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "web/elsewhere") {
		t.Errorf("warned about a policy that selects no TCP workload:\n%s", all)
	}
}
