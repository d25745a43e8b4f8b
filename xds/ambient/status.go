package ambient

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// NodeConn is one connected node proxy as /debug/nodez reports it: its
// sync state per type and what its current view holds.
type NodeConn struct {
	Connection  string                `json:"connection"`
	Node        string                `json:"node"`
	Type        string                `json:"type"` // always "node"
	ConnectedAt time.Time             `json:"connectedAt"`
	Snapshot    string                `json:"snapshotVersion,omitempty"`
	Types       map[string]TypeStatus `json:"types"` // by ShortType
	Workloads   []Workload            `json:"workloads"`
	Policies    []Policy              `json:"policies"`
}

// Workload is an ambient workload placed on the node.
type Workload struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	SPIFFEID  string `json:"spiffeId"`
	// MTLSMode is the workload's effective PeerAuthentication mode.
	MTLSMode string `json:"mtlsMode"`
	// Policies are the AuthorizationPolicies that apply to it.
	Policies []string `json:"policies,omitempty"`
}

// Policy is a PeerAuthentication or AuthorizationPolicy the node is sent.
type Policy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action,omitempty"`
	Version   string `json:"version"`
	// Acked reports whether the node ACKed this version.
	Acked bool `json:"acked"`
}

// Connections lists the connected node proxies, by connection key.
func (s *Server) Connections() []NodeConn {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	enc := s.enc
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return strings.Compare(a.key, b.key) })
	out := make([]NodeConn, 0, len(conns))
	for _, c := range conns {
		out = append(out, s.describe(c, enc))
	}
	return out
}

func (s *Server) describe(c *conn, enc *encoder) NodeConn {
	nc := NodeConn{Connection: c.key, Node: c.node, Type: "node", ConnectedAt: c.connectedAt, Types: map[string]TypeStatus{}}
	c.mu.Lock()
	acked := map[string]map[string]string{}
	for url, ts := range c.types {
		nc.Types[ShortType(url)] = ts.status
		acked[url] = ts.acked
	}
	c.mu.Unlock()
	if enc == nil {
		return nc
	}
	nc.Snapshot = enc.snap.Version()
	v, err := s.viewFor(c.node)
	if err != nil || v == nil {
		return nc
	}
	nc.Workloads = workloads(enc.snap, c.node)
	nc.Policies = policies(enc.snap, v, acked)
	return nc
}

func workloads(snap *mesh.Snapshot, node string) []Workload {
	td := snap.Mesh().TrustDomain
	var out []Workload
	for _, w := range Local(snap, node) {
		id, _ := w.Identity(td).SPIFFEID()
		wl := Workload{Namespace: w.Namespace, Name: w.Name, Address: w.Address, SPIFFEID: id.String(),
			MTLSMode: string(authn.PeerPolicyFor(snap, w.Namespace, w.Labels).ModeFor(0))}
		for _, c := range authorizationPolicies(snap, []*mesh.Workload{w}) {
			wl.Policies = append(wl.Policies, c.Namespace+"/"+c.Name)
		}
		out = append(out, wl)
	}
	slices.SortFunc(out, func(a, b Workload) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out
}

func policies(snap *mesh.Snapshot, v *view, acked map[string]map[string]string) []Policy {
	var out []Policy
	for _, url := range []string{mcp.TypePeerAuthentication, mcp.TypeAuthorizationPolicy} {
		for _, name := range slices.Sorted(mapsKeys(v.res[url])) {
			r := v.res[url][name]
			ns, n, _ := strings.Cut(name, "/")
			p := Policy{Kind: ShortKind(url), Namespace: ns, Name: n, Version: r.Version, Acked: acked[url][name] == r.Version}
			if c, ok := snap.Get(mesh.Key{Kind: mesh.KindAuthorizationPolicy, Namespace: ns, Name: n}); ok && url == mcp.TypeAuthorizationPolicy {
				p.Action = actionOf(c)
			}
			out = append(out, p)
		}
	}
	return out
}

// Handler serves /debug/nodez: Connections as JSON.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Connections())
	})
}
