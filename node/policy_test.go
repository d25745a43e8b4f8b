package node

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/authztest"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// suiteFile is one file of authz/testdata/semantics (the format of
// authz/semantics_test.go, decoded strictly so a format change is seen).
// The semantics suite's data format is authz's (authztest).
type suiteCase = authztest.Case

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func snapshotOf(t *testing.T, meshYAML, policies string) *mesh.Snapshot {
	t.Helper()
	var mc mesh.MeshConfig
	if meshYAML != "" {
		_, m, err := schema.DecodeAll([]byte(meshYAML), mesh.Source{})
		if err != nil || m == nil {
			t.Fatalf("mesh config: %v", err)
		}
		mc = *m
	}
	cfgs, _, err := schema.DecodeAll([]byte(policies), mesh.Source{})
	if err != nil {
		t.Fatalf("policies: %v", err)
	}
	return mesh.NewSnapshot(mc, cfgs)
}

// TestAgreesWithSemanticsSuiteTCP: every L4 case of the authz semantics
// suite gets the same verdict and deciding rule from the node proxy's
// matcher as the suite expects (the same cases the Rego engine, native
// RBAC and the Envoy simulator are held to).
func TestAgreesWithSemanticsSuiteTCP(t *testing.T) {
	n := 0
	for name, sf := range authztest.LoadSemantics(t) {
		var err error
		var pol *Policy
		for _, c := range sf.Cases {
			if !c.Req.TCP {
				continue
			}
			if pol == nil {
				pol, err = NewPolicy(snapshotOf(t, sf.Mesh, sf.Policies), authz.EngineConfig{Timeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
			}
			n++
			t.Run(name+"/"+c.Name, func(t *testing.T) { checkSuiteCase(t, pol, c) })
		}
	}
	if n < 14 {
		t.Errorf("ran %d TCP cases, want at least 14", n)
	}
}

func checkSuiteCase(t *testing.T, pol *Policy, c suiteCase) {
	labels := mesh.Labels(c.Labels)
	if labels == nil {
		labels = mesh.Labels{"app": "web"}
	}
	port := c.Req.Port
	if port == 0 {
		port = 8080
	}
	conn := Conn{
		Principal: c.Req.Principal,
		Source:    netip.AddrPortFrom(netip.MustParseAddr(or(c.Req.IP, "10.0.0.1")), 40000),
		Dest:      netip.AddrPortFrom(netip.MustParseAddr(or(c.Req.DstIP, "10.0.0.2")), uint16(port)),
	}
	v := pol.Decide(context.Background(), Workload{Namespace: or(c.NS, "foo"), Labels: labels}, conn)
	if v.Allowed != c.Allow {
		t.Errorf("allowed = %v, want %v (%s): %s", v.Allowed, c.Allow, c.Why, v.Explain())
	}
	if c.By != "" && (v.Decision == nil || v.Decision.Rule != c.By) {
		t.Errorf("deciding rule: %s, want %s", v.Explain(), c.By)
	}
	if c.Reason != "" && string(v.Reason) != c.Reason {
		t.Errorf("reason = %s, want %s", v.Reason, c.Reason)
	}
	var audit []string
	if v.Decision != nil {
		for _, h := range v.Decision.Audit {
			audit = append(audit, h.Rule)
		}
	}
	if strings.Join(audit, ",") != strings.Join(c.Audit, ",") {
		t.Errorf("audit = %v, want %v", audit, c.Audit)
	}
}

const peerPolicies = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    5432: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil, namespace: shop}
spec:
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/evil/sa/x"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - from: [{source: {namespaces: ["frontend"]}}]
    to: [{operation: {ports: ["5432"]}}]
  - from: [{source: {ipBlocks: ["10.254.9.0/24"]}}]
`

// TestPeerAuthenticationAndL4Rules: STRICT refuses plaintext before any
// AuthorizationPolicy runs; PERMISSIVE lets plaintext through to them; a
// port-level STRICT wins on its port; principals, namespaces, ipBlocks and
// ports decide with the rule that decided named.
func TestPeerAuthenticationAndL4Rules(t *testing.T) {
	pol, err := NewPolicy(snapshotOf(t, "", peerPolicies), authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	web := Workload{Namespace: "shop", Labels: mesh.Labels{"app": "web"}}
	legacy := Workload{Namespace: "shop", Labels: mesh.Labels{"app": "legacy"}}
	db := Workload{Namespace: "shop", Labels: mesh.Labels{"app": "db"}}
	src := netip.MustParseAddrPort("10.254.1.2:40000")
	to := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.254.2.2"), port) }
	for _, tc := range []struct {
		name      string
		w         Workload
		principal string
		src       netip.AddrPort
		port      uint16
		allow     bool
		reason    authz.Reason
		mode      authn.Mode
		rule      string
	}{
		{name: "strict refuses plaintext", w: web, port: 80, reason: ReasonMTLSRequired, mode: authn.ModeStrict},
		{name: "strict accepts mtls", w: web, principal: "spiffe://cluster.local/ns/a/sa/b", port: 80, allow: true, reason: authz.ReasonNoAllowPolicy, mode: authn.ModeStrict},
		{name: "permissive accepts plaintext", w: legacy, port: 80, allow: true, reason: authz.ReasonNoAllowPolicy, mode: authn.ModePermissive},
		{name: "port-level strict refuses plaintext", w: legacy, port: 5432, reason: ReasonMTLSRequired, mode: authn.ModeStrict},
		{name: "deny by principal", w: web, principal: "spiffe://cluster.local/ns/evil/sa/x", port: 80, reason: authz.ReasonDeny, mode: authn.ModeStrict, rule: "ns[shop]-policy[deny-evil]-rule[0]"},
		{name: "deny by principal on plaintext-permitted workload only matches mtls", w: legacy, port: 80, allow: true, reason: authz.ReasonNoAllowPolicy, mode: authn.ModePermissive},
		{name: "allow by namespace and port", w: db, principal: "spiffe://cluster.local/ns/frontend/sa/web", port: 5432, allow: true, reason: authz.ReasonAllow, mode: authn.ModeStrict, rule: "ns[shop]-policy[only-frontend]-rule[0]"},
		{name: "allow by namespace wrong port", w: db, principal: "spiffe://cluster.local/ns/frontend/sa/web", port: 5433, reason: authz.ReasonNoAllowMatch, mode: authn.ModeStrict},
		{name: "other namespace not allowed", w: db, principal: "spiffe://cluster.local/ns/batch/sa/job", port: 5432, reason: authz.ReasonNoAllowMatch, mode: authn.ModeStrict},
		{name: "allow by ipBlock", w: db, principal: "spiffe://cluster.local/ns/batch/sa/job", src: netip.MustParseAddrPort("10.254.9.7:1234"), port: 6379, allow: true, reason: authz.ReasonAllow, mode: authn.ModeStrict, rule: "ns[shop]-policy[only-frontend]-rule[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := src
			if tc.src.IsValid() {
				s = tc.src
			}
			v := pol.Decide(context.Background(), tc.w, Conn{Principal: tc.principal, Source: s, Dest: to(tc.port)})
			if v.Allowed != tc.allow || v.Reason != tc.reason || v.Mode != tc.mode {
				t.Fatalf("verdict = allowed %v reason %s mode %s, want %v %s %s: %s", v.Allowed, v.Reason, v.Mode, tc.allow, tc.reason, tc.mode, v.Explain())
			}
			if tc.rule != "" && v.Decision.Rule != tc.rule {
				t.Errorf("rule = %q, want %q", v.Decision.Rule, tc.rule)
			}
		})
	}
}

// TestDecisionEntry: a verdict renders as a decision-log line naming the
// deciding rule, or the PeerAuthentication refusal and its policy.
func TestDecisionEntry(t *testing.T) {
	pol, err := NewPolicy(snapshotOf(t, "", peerPolicies), authz.EngineConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	web := Workload{Namespace: "shop", Labels: mesh.Labels{"app": "web"}}
	dst := netip.MustParseAddrPort("10.254.2.2:80")
	deny := Decision{ID: "d1", Workload: mesh.Key{Namespace: "shop", Name: "web-1"}, Transport: "hbone",
		Conn:    Conn{Principal: "spiffe://cluster.local/ns/evil/sa/x", Dest: dst},
		Verdict: pol.Decide(context.Background(), web, Conn{Principal: "spiffe://cluster.local/ns/evil/sa/x", Dest: dst})}
	e := deny.Entry()
	if e.DecisionID != "d1" || e.Workload != "shop/web-1" || e.Allowed || e.Rule != "ns[shop]-policy[deny-evil]-rule[0]" || e.SourcePrincipal != "spiffe://cluster.local/ns/evil/sa/x" || e.Action != "DENY" {
		t.Errorf("deny entry = %+v", e)
	}
	strict := Decision{Verdict: pol.Decide(context.Background(), web, Conn{Dest: dst})}
	if e := strict.Entry(); e.Allowed || e.Reason != string(ReasonMTLSRequired) || !strings.Contains(e.Policy, "istio-system/default") || e.Explanation == "" {
		t.Errorf("strict entry = %+v", e)
	}
}
