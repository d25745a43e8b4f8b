package ambient

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/node"
)

// world is a running two-node ambient cluster.
type world struct {
	c         *cluster
	a, b, e   pod // ambient: a on node-1; b (db) and e on node-2
	d         pod // ambient on node-2, PERMISSIVE namespace
	plain     pod // not enrolled: a plaintext caller
	x         pod // not enrolled: the direct-path baseline server
	nodes     [2]*node.Proxy
	metrics   [2]*prometheus.Registry
	clock     *fakeClock
	mu        sync.Mutex
	decisions []node.Decision
}

func (w *world) seen() []node.Decision {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]node.Decision(nil), w.decisions...)
}

// config is the mesh: WorkloadEntries enrolled with istio.io/dataplane-mode
// and placed with ward.io/node, a service VIP for db, mesh-wide STRICT
// with a PERMISSIVE namespace, and L4 AuthorizationPolicies.
func (w *world) config() string {
	we := func(p pod, ns, sa, app, nodeName string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: %s}
spec:
  address: %s
  serviceAccount: %s
  labels: {app: %s, istio.io/dataplane-mode: ambient, ward.io/node: %s}
---
`, p.name, ns, p.addr, sa, app, nodeName)
	}
	return we(w.a, "frontend", "web", "web", "node-1") +
		we(w.b, "shop", "db", "db", "node-2") +
		we(w.e, "evil", "x", "evil", "node-2") +
		we(w.d, "legacy", "old", "old", "node-2") + `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  addresses: [10.254.100.1]
  ports: [{number: 5432, name: tcp-db, protocol: TCP, targetPort: 9000}]
  resolution: STATIC
  workloadSelector: {labels: {app: db}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-frontend-and-evil, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: [frontend, evil]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-evil, namespace: shop}
spec:
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/evil/sa/x]}}]}]
`
}

// fakeClock is the wall clock moved forward by hand; its After never
// fires (tests call Renew themselves).
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time                       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) After(time.Duration) <-chan time.Time { return nil }
func (c *fakeClock) advance(d time.Duration)              { c.offset.Add(int64(d)) }

func snapshot(t testing.TB, src string) *mesh.Snapshot {
	t.Helper()
	cfgs, mc, err := schema.DecodeAll([]byte(src), mesh.Source{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var m mesh.MeshConfig
	if mc != nil {
		m = *mc
	}
	return mesh.NewSnapshot(m, cfgs)
}

// newWorld builds the cluster; beforeNodes run after the pods and apps
// exist, just before the node proxies start.
func newWorld(t testing.TB, beforeNodes ...func()) *world {
	c := newCluster(t)
	w := &world{c: c, clock: &fakeClock{}, a: c.pod("a"), b: c.pod("b"), e: c.pod("e"), d: c.pod("d"), plain: c.pod("plain"), x: c.pod("x")}
	c.run(w.b, "echo:9000,http:8080,sink:9100,peer:9200")
	c.run(w.d, "echo:9000,peer:9200")
	c.run(w.x, "echo:9000,sink:9100")
	snap := snapshot(t, w.config())
	cp := newControlPlane(t, func() *mesh.Snapshot { return snap })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, f := range beforeNodes {
		f()
	}
	for i := range w.nodes {
		w.metrics[i] = prometheus.NewRegistry()
		iss := cp.issuer(t, fmt.Sprintf("node-%d", i+1))
		p, err := node.New(node.Config{
			Metrics: w.metrics[i],
			Node:    fmt.Sprintf("node-%d", i+1), TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local"),
			Snapshot: snap, Issuer: iss, Log: log, Clock: w.clock, RemoveRulesOnStop: true,
			OnDecision: func(d node.Decision) {
				w.mu.Lock()
				w.decisions = append(w.decisions, d)
				w.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = p.Start(ctx)
		cancel()
		t.Cleanup(p.Stop)
		if err != nil {
			t.Fatalf("node-%d: %v", i+1, err)
		}
		w.nodes[i] = p
	}
	return w
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exchange sends msg from p to addr, half-closes, and returns what came
// back before EOF.
func exchange(t testing.TB, p pod, addr, msg string) (string, error) {
	t.Helper()
	conn, err := dial(ctxT(t), p, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	conn.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(conn)
	return string(b), err
}

// lastFor returns the last decision for the WorkloadEntry named name.
func (w *world) lastFor(t testing.TB, name string) node.Decision {
	t.Helper()
	ds := w.seen()
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Workload.Name == name {
			return ds[i]
		}
	}
	t.Fatalf("no decision for %s (have %d)", name, len(ds))
	return node.Decision{}
}

func TestAmbientHBONE(t *testing.T) {
	w := newWorld(t)

	t.Run("pod a reaches db over hbone with its identity", func(t *testing.T) {
		got, err := exchange(t, w.a, w.b.addr+":9000", "hello db")
		if err != nil || got != "hello db" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		d := w.lastFor(t, w.b.name)
		if d.Transport != "hbone" || d.Conn.Principal != "spiffe://cluster.local/ns/frontend/sa/web" || !d.Verdict.Allowed {
			t.Fatalf("db's node proxy saw %+v", d)
		}
		if d.Verdict.Decision == nil || d.Verdict.Decision.Rule != "ns[shop]-policy[from-frontend-and-evil]-rule[0]" {
			t.Errorf("allowed by %s, want the ALLOW-by-namespace rule", d.Verdict.Explain())
		}
		if d.Conn.Source.Addr().String() != w.a.addr {
			t.Errorf("tunnel came from %s, want pod a %s", d.Conn.Source, w.a.addr)
		}
	})
	t.Run("db sees pod a's address as the caller", func(t *testing.T) {
		// Source-IP preservation (IP_TRANSPARENT, as ztunnel): without it
		// the application saw its own pod address.
		got, err := exchange(t, w.a, w.b.addr+":9200", "")
		if err != nil {
			t.Fatalf("peer app: %q, %v", got, err)
		}
		if host, _, _ := net.SplitHostPort(got); host != w.a.addr {
			t.Fatalf("db saw its caller as %q, want pod a %s", got, w.a.addr)
		}
	})
	t.Run("service vip is load-balanced to db's target port", func(t *testing.T) {
		got, err := exchange(t, w.a, "10.254.100.1:5432", "via vip")
		if err != nil || got != "via vip" {
			t.Fatalf("echo via VIP = %q, %v", got, err)
		}
		if d := w.lastFor(t, w.b.name); d.Conn.Dest.String() != w.b.addr+":9000" {
			t.Errorf("tunnel authority = %s, want %s:9000", d.Conn.Dest, w.b.addr)
		}
	})
	t.Run("unmodified http server sees a normal request", func(t *testing.T) {
		got, err := exchange(t, w.a, w.b.addr+":8080", "GET / HTTP/1.0\r\nHost: db\r\n\r\n")
		if err != nil || !strings.Contains(got, "200 OK") || !strings.Contains(got, "hello from db") {
			t.Fatalf("http = %q, %v", got, err)
		}
	})
	t.Run("deny by principal", func(t *testing.T) {
		got, _ := exchange(t, w.e, w.b.addr+":9000", "let me in")
		if got != "" {
			t.Fatalf("denied caller got %q", got)
		}
		d := w.lastFor(t, w.b.name)
		if d.Verdict.Allowed || d.Verdict.Decision == nil || d.Verdict.Decision.Rule != "ns[shop]-policy[deny-evil]-rule[0]" || d.Verdict.Reason != authz.ReasonDeny {
			t.Fatalf("decision = %s (%+v)", d.Verdict.Explain(), d.Conn)
		}
	})
	t.Run("strict refuses a plaintext caller", func(t *testing.T) {
		got, _ := exchange(t, w.plain, w.b.addr+":9000", "plain")
		if got != "" {
			t.Fatalf("plaintext caller got %q", got)
		}
		d := w.lastFor(t, w.b.name)
		if d.Transport != "plaintext" || d.Verdict.Allowed || d.Verdict.Reason != node.ReasonMTLSRequired {
			t.Fatalf("decision = %s", d.Verdict.Explain())
		}
	})
	t.Run("permissive accepts a plaintext caller", func(t *testing.T) {
		got, err := exchange(t, w.plain, w.d.addr+":9000", "plain ok")
		if err != nil || got != "plain ok" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		d := w.lastFor(t, w.d.name)
		if d.Transport != "plaintext" || !d.Verdict.Allowed || d.Conn.Principal != "" {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("permissive workload sees the plaintext caller's address", func(t *testing.T) {
		got, err := exchange(t, w.plain, w.d.addr+":9200", "")
		if err != nil {
			t.Fatalf("peer app: %q, %v", got, err)
		}
		if host, _, _ := net.SplitHostPort(got); host != w.plain.addr {
			t.Fatalf("legacy saw its caller as %q, want pod plain %s", got, w.plain.addr)
		}
		if v := metric(t, w.metrics[1], "ward_node_source_not_preserved_total", "namespace", "legacy"); v != 0 {
			t.Errorf("connections without the caller's address = %v", v)
		}
	})
	t.Run("ipv6 is refused, not a way around mtls", func(t *testing.T) {
		// Control: IPv6 works between non-enrolled pods.
		if got, err := exchange(t, w.plain, w.c.linkLocal(w.x)+":9000", "v6"); err != nil || got != "v6" {
			t.Fatalf("IPv6 control echo = %q, %v", got, err)
		}
		if got, err := exchange(t, w.plain, w.c.linkLocal(w.b)+":9000", "v6"); err == nil || got != "" {
			t.Fatalf("plaintext IPv6 reached a STRICT workload: %q, %v", got, err)
		}
		if got, err := exchange(t, w.a, w.c.linkLocal(w.x)+":9000", "v6"); err == nil || got != "" {
			t.Fatalf("an enrolled pod's IPv6 left uncaptured: %q, %v", got, err)
		}
	})
	t.Run("the proxy's own ports are not a loop", func(t *testing.T) {
		before := len(w.seen())
		for _, port := range []string{"15006", "15001", "15008"} {
			if got, _ := exchange(t, w.plain, w.d.addr+":"+port, "loop?"); got != "" {
				t.Errorf("port %s answered %q", port, got)
			}
		}
		if got, _ := exchange(t, w.a, "127.0.0.1:15001", "loop?"); got != "" {
			t.Errorf("the outbound listener dialled directly answered %q", got)
		}
		if n := len(w.seen()) - before; n != 0 {
			t.Errorf("%d connections were judged: the proxy looped into its own ports", n)
		}
		if got, err := exchange(t, w.plain, w.d.addr+":9000", "alive"); err != nil || got != "alive" {
			t.Fatalf("after the loop attempts: %q, %v", got, err)
		}
	})
	t.Run("metrics count connections, denies per rule and certificate expiry", func(t *testing.T) {
		node2 := w.metrics[1]
		if v := metric(t, node2, "ward_node_denies_total", "namespace", "shop", "rule", "ns[shop]-policy[deny-evil]-rule[0]"); v < 1 {
			t.Errorf("denies by deny-evil = %v", v)
		}
		if v := metric(t, node2, "ward_node_denies_total", "namespace", "shop", "rule", "mtls_required"); v < 1 {
			t.Errorf("STRICT refusals = %v", v)
		}
		if v := metric(t, node2, "ward_node_connections_total", "direction", "inbound", "transport", "hbone", "result", "allowed"); v < 1 {
			t.Errorf("inbound hbone allowed = %v", v)
		}
		if v := metric(t, w.metrics[0], "ward_node_connections_total", "direction", "outbound", "transport", "hbone", "result", "allowed"); v < 1 {
			t.Errorf("outbound hbone on node-1 = %v", v)
		}
		if v := metric(t, node2, "ward_node_cert_expiry_timestamp_seconds", "namespace", "shop", "name", w.b.name); v < float64(time.Now().Unix()) {
			t.Errorf("db certificate expiry = %v", v)
		}
		if v := metric(t, w.metrics[0], "ward_node_bytes_total", "direction", "sent"); v < 1 {
			t.Errorf("bytes sent on node-1 = %v", v)
		}
	})
	t.Run("permissive workload over hbone still sees the identity", func(t *testing.T) {
		got, err := exchange(t, w.a, w.d.addr+":9000", "mtls")
		if err != nil || got != "mtls" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		if d := w.lastFor(t, w.d.name); d.Transport != "hbone" || d.Conn.Principal != "spiffe://cluster.local/ns/frontend/sa/web" {
			t.Fatalf("decision = %+v", d)
		}
	})
}

// TestAmbientConfigChanges: a policy change applies to new connections
// at once without dropping unrelated established ones, closes an
// established connection it now denies, and a workload that leaves the
// node loses its capture rules and listeners.
func TestAmbientConfigChanges(t *testing.T) {
	w := newWorld(t)
	// A long-lived connection a → db.
	conn, err := dial(ctxT(t), w.a, w.b.addr+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("long-lived echo = %q, %v", buf, err)
		}
	}
	roundTrip("before")

	// New policy: the legacy namespace denies everyone; db is unchanged.
	denyLegacy := w.config() + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: legacy}
spec:
  action: DENY
  rules: [{}]
`
	for _, p := range w.nodes {
		if err := p.SetSnapshot(ctxT(t), snapshot(t, denyLegacy)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := exchange(t, w.a, w.d.addr+":9000", "x"); got != "" {
		t.Fatalf("legacy answered %q after deny-all", got)
	}
	if d := w.lastFor(t, w.d.name); d.Verdict.Allowed || d.Verdict.Decision.Rule != "ns[legacy]-policy[deny-all]-rule[0]" {
		t.Fatalf("decision = %s", d.Verdict.Explain())
	}
	roundTrip("after") // the unrelated connection is untouched

	// d leaves node-2: its rules and listeners go; a's connection stays.
	if rules := captureRules(t, w.d); !strings.Contains(rules, "nat_prerouting: return redirect") || !strings.Contains(rules, "mangle_output: ct") || !strings.Contains(rules, "filter_input: return reject") {
		t.Fatalf("no capture rules in d before removal:\n%s", rules)
	}
	if routing := policyRouting(t, w.d); !strings.Contains(routing, "fwmark 0x111/0xfff pref 32764 lookup 100") || !strings.Contains(routing, "local 0.0.0.0/0 dev lo table 100") {
		t.Fatalf("no policy routing for transparent sockets in d before removal:\n%s", routing)
	}
	without := strings.Replace(denyLegacy, "ward.io/node: node-2}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry", "ward.io/node: node-9}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry", 1)
	if without == denyLegacy {
		t.Fatal("test bug: d's WorkloadEntry not moved")
	}
	if err := w.nodes[1].SetSnapshot(ctxT(t), snapshot(t, without)); err != nil {
		t.Fatal(err)
	}
	if rules := captureRules(t, w.d); rules != "" {
		t.Fatalf("capture rules left in d after removal:\n%s", rules)
	}
	if routing := policyRouting(t, w.d); routing != "" {
		t.Fatalf("policy routing left in d after removal:\n%s", routing)
	}
	if got, err := exchange(t, w.plain, w.d.addr+":9000", "direct"); err != nil || got != "direct" {
		t.Fatalf("after removal d is reached directly: %q, %v", got, err)
	}
	if got := len(w.nodes[1].Enrolled()); got != 2 {
		t.Errorf("node-2 enrols %d workloads, want 2", got)
	}
	roundTrip("still")

	// A label change on an enrolled workload: policies selecting the new
	// label apply to its new connections without re-enrolling it.
	locked := strings.Replace(without, "{app: db, ", "{app: db, tier: locked, ", 1) + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-locked, namespace: shop}
spec:
  selector: {matchLabels: {tier: locked}}
  action: DENY
  rules: [{}]
`
	serial := w.nodes[1].Certificates()
	for _, p := range w.nodes {
		if err := p.SetSnapshot(ctxT(t), snapshot(t, locked)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := exchange(t, w.a, w.b.addr+":9000", "x"); got != "" {
		t.Fatalf("db answered %q after it was labelled tier=locked", got)
	}
	if d := w.lastFor(t, w.b.name); d.Verdict.Allowed || d.Verdict.Decision.Rule != "ns[shop]-policy[deny-locked]-rule[0]" {
		t.Fatalf("decision = %s", d.Verdict.Explain())
	}
	for k, c := range w.nodes[1].Certificates() {
		if c != serial[k] {
			t.Errorf("%s re-enrolled on a label change", k.Name)
		}
	}
	// The long-lived connection to db is now denied too: it was judged
	// again and closed (the decision says so).
	if n, err := io.ReadFull(conn, make([]byte, 1)); err == nil {
		t.Fatalf("the established connection to db survived a policy that denies it (read %d)", n)
	}
	found := false
	for _, d := range w.seen() {
		found = found || (d.Established && d.Workload.Name == w.b.name && !d.Verdict.Allowed)
	}
	if !found {
		t.Error("no decision records closing the established connection")
	}
}

// TestAmbientRotationUnderLoad: renewing both workloads' certificates
// while connections are being made fails none of them, and a connection
// opened before the rotation keeps working after it.
func TestAmbientRotationUnderLoad(t *testing.T) {
	w := newWorld(t)
	long, err := dial(ctxT(t), w.a, w.b.addr+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	long.SetDeadline(time.Now().Add(30 * time.Second))

	var failed atomic.Int32
	ok := make(chan struct{}, 1024)
	stop := make(chan struct{})
	var load sync.WaitGroup
	for range 2 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := exchange(t, w.a, w.b.addr+":9000", "ping"); err != nil || got != "ping" {
					failed.Add(1)
					t.Errorf("connection failed during rotation: %q, %v", got, err)
					continue
				}
				select {
				case ok <- struct{}{}:
				default:
				}
			}
		}()
	}
	waitN := func(n int) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for range n {
			select {
			case <-ok:
			case <-timeout:
				t.Fatal("load made no progress")
			}
		}
	}
	waitN(20)
	before := map[string]string{}
	for _, p := range w.nodes {
		for k, c := range p.Certificates() {
			before[k.Name] = c.SerialNumber.String()
		}
	}
	w.clock.advance(13 * time.Hour) // past half of the 24h lifetime
	for _, p := range w.nodes {
		p.Renew(ctxT(t))
	}
	for _, p := range w.nodes {
		for k, c := range p.Certificates() {
			if c.SerialNumber.String() == before[k.Name] {
				t.Errorf("%s: certificate not renewed", k.Name)
			}
		}
	}
	waitN(20)
	close(stop)
	load.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d connections failed across the rotation", n)
	}
	if _, err := io.WriteString(long, "old"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(long, buf); err != nil || string(buf) != "old" {
		t.Fatalf("pre-rotation connection: %q, %v", buf, err)
	}
}

// metric returns the value of the series name{labels...} in r (0 when
// absent).
func metric(t *testing.T, r *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
