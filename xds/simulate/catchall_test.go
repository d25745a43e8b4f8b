package simulate_test

import (
	"testing"

	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
)

// TestHoleStrictUndeclaredPort: under a namespace-wide STRICT
// PeerAuthentication, plaintext to a port no service declares must be
// refused, as Istio's passthrough chains carry the workload's mTLS mode
// (docs/authn.md rule 7 says Ward builds such "port 0" chains). The
// sidecar's virtualInbound-catchall chain is built without the
// InboundSecurity hook, so today the plaintext connection is forwarded
// to InboundPassthroughCluster. Found on branch seinbound; skipped until
// the catch-all gets its PeerAuthentication variants (and per-port
// passthrough chains for portLevelMtls ports no service declares).
func TestHoleStrictUndeclaredPort(t *testing.T) {
	t.Skip("known hole: the inbound catch-all chain ignores PeerAuthentication (see the comment)")
	sim := wardSim(t, snapshotOf(t, workloadYAML), web, hooks.Config{}, nil)
	r := mtlsTo(7777, simulate.TCP, "")
	r.TLS, r.ALPN = false, nil
	expectNotAllowed(t, sim.Run(r))
}
