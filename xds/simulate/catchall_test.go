package simulate_test

import (
	"testing"

	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// TestStrictUndeclaredPort: under a namespace-wide STRICT
// PeerAuthentication, plaintext to a port no service declares is refused:
// the catch-all chains carry the workload's mode, as Istio's passthrough
// chains do (docs/authn.md rule 7). Until branch seinbound the catch-all
// was one plaintext chain and forwarded it.
func TestStrictUndeclaredPort(t *testing.T) {
	sim := wardSim(t, snapshotOf(t, workloadYAML), web, hooks.Config{}, nil)
	r := mtlsTo(7777, simulate.TCP, "")
	r.TLS, r.ALPN = false, nil
	expectNotAllowed(t, sim.Run(r))
}

// TestStrictPortLevelUndeclaredPort: a port-level STRICT on a port no
// service declares binds there (its own catch-all chains), while the
// workload's PERMISSIVE still takes plaintext on other undeclared ports;
// a port-level PERMISSIVE under a STRICT workload opens only that port.
func TestStrictPortLevelUndeclaredPort(t *testing.T) {
	policy := func(mode, port, portMode string) string {
		return `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: ` + mode + `}
  portLevelMtls:
    ` + port + `: {mode: ` + portMode + `}
`
	}
	plain := func(port uint32) simulate.Request {
		r := mtlsTo(port, simulate.TCP, "")
		r.TLS, r.ALPN = false, nil
		return r
	}
	sim := wardSim(t, snapshotOf(t, workloadYAML, policy("PERMISSIVE", "7777", "STRICT")), web, hooks.Config{}, nil)
	expectNotAllowed(t, sim.Run(plain(7777)))
	if res := sim.Run(plain(7778)); res.Verdict != simulate.Allowed {
		t.Errorf("PERMISSIVE undeclared port 7778: %s", res)
	}
	if res := sim.Run(mtlsTo(7777, simulate.TCP, "spiffe://cluster.local/ns/foo/sa/alice")); res.Verdict != simulate.Allowed || res.Cluster != "InboundPassthroughCluster" {
		t.Errorf("mTLS to STRICT undeclared port 7777: %s", res)
	}

	sim = wardSim(t, snapshotOf(t, workloadYAML, policy("STRICT", "7777", "PERMISSIVE")), web, hooks.Config{}, nil)
	if res := sim.Run(plain(7777)); res.Verdict != simulate.Allowed {
		t.Errorf("port-level PERMISSIVE 7777 under STRICT: %s", res)
	}
	expectNotAllowed(t, sim.Run(plain(7778)))
}
