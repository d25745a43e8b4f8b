package xds

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/internal/access"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// Handler serves the debug pages under /debug/: config_dump?proxy=ID,
// syncz and connections. Mount it on the debug port (15014) behind an
// access.Gate: a caller the gate marks as not an operator sees only the
// proxies of its own namespace. Without a gate's caller in the request
// context every proxy is shown (in-process use and tests).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/config_dump", s.ConfigDump)
	mux.HandleFunc("GET /debug/syncz", s.Syncz)
	mux.HandleFunc("GET /debug/connections", s.Connections)
	return mux
}

// ConfigDump writes what was last handed to the cache for ?proxy=ID (a
// node id: its most recent connection) or ?connection=KEY, as JSON:
// versions and every listener, route, cluster and endpoint set. With
// ?acked=true it writes, per type, what the proxy last ACKed instead (the
// config it enforces): "versions" are the ACKed versions, "latest" what
// was generated since, and "unacked" the types the proxy has ACKed no
// known version of (they carry no resources).
func (s *Server) ConfigDump(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, key := q.Get("proxy"), q.Get("connection")
	s.mu.Lock()
	c := s.conns[key]
	if key == "" {
		c = s.latestOf(id)
	}
	var g *generated
	var acked [4]*generated
	if c != nil && sees(r, c) {
		g, acked = c.gen, c.acked
	} else {
		c = nil // another namespace's proxy is as unknown as a missing one
	}
	s.mu.Unlock()
	if c == nil {
		http.Error(w, "unknown proxy "+s.clip(id+key)+" (see /debug/connections)", http.StatusNotFound)
		return
	}
	out := map[string]any{"proxy": c.node, "connection": c.id}
	switch {
	case q.Get("acked") == "true":
		ackedDump(out, g, acked)
	case g != nil:
		out["versions"] = g.versions
		out["listeners"] = rawList(g.res.Listeners)
		out["routes"] = rawList(g.res.Routes)
		out["clusters"] = rawList(g.res.Clusters)
		out["endpoints"] = rawList(g.res.Endpoints)
	}
	writeJSON(w, out)
}

// ackedDump fills out with the ACKed config of each type.
func ackedDump(out map[string]any, latest *generated, acked [4]*generated) {
	out["view"] = "acked"
	if latest != nil {
		out["latest"] = latest.versions
	}
	var v translate.Versions
	unacked := []string{}
	keys := [4]string{"listeners", "routes", "clusters", "endpoints"}
	vers := [4]*string{&v.Listeners, &v.Routes, &v.Clusters, &v.Endpoints}
	for i, url := range typeURLs {
		a := acked[i]
		if a == nil {
			unacked = append(unacked, shortType(url))
			out[keys[i]] = []json.RawMessage{}
			continue
		}
		*vers[i] = a.version(url)
		out[keys[i]] = a.rawOf(i)
	}
	out["versions"], out["unacked"] = v, unacked
}

// rawOf is the JSON of g's resources of type i (typeURLs order).
func (g *generated) rawOf(i int) []json.RawMessage {
	switch i {
	case 0:
		return rawList(g.res.Listeners)
	case 1:
		return rawList(g.res.Routes)
	case 2:
		return rawList(g.res.Clusters)
	}
	return rawList(g.res.Endpoints)
}

func rawList[T proto.Message](in []T) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(in))
	for _, m := range in {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		out = append(out, b)
	}
	return out
}

// SyncStatus is one proxy's row in /debug/syncz.
type SyncStatus struct {
	Proxy string `json:"proxy"`
	// Connection is the stream's key (nodeID-counter): each stream has
	// its own state, so one node id may have several rows.
	Connection string               `json:"connection"`
	Type       mesh.ProxyType       `json:"type"`
	Namespace  string               `json:"namespace"`
	Types      map[string]*TypeSync `json:"types"`
	// ConnectedAt is when the proxy's first stream attached.
	ConnectedAt time.Time `json:"connectedAt"`
	// SnapshotVersion is the control plane's current config snapshot.
	SnapshotVersion string `json:"snapshotVersion,omitempty"`
}

// TypeSync is the sync state of one resource type (cds, lds, eds, rds)
// for one proxy: the version generated for it, sent, ACKed, pending (sent
// or to be sent, not yet ACKed, since when) and its NACKs.
type TypeSync struct {
	Sent         string     `json:"sent,omitempty"`
	Acked        string     `json:"acked,omitempty"`
	Pending      string     `json:"pending,omitempty"`
	Nacks        int        `json:"nacks,omitempty"`
	NackedVer    string     `json:"nackedVersion,omitempty"`
	LastNack     string     `json:"lastNack,omitempty"`
	Latest       string     `json:"latest,omitempty"`
	PendingSince *time.Time `json:"pendingSince,omitempty"`
}

// Syncz writes per proxy and type: the latest version generated, the
// version sent, acked, pending (and since when), NACKs and the last NACK's
// error; plus when the proxy connected and the control plane's snapshot.
func (s *Server) Syncz(w http.ResponseWriter, r *http.Request) {
	rows := s.SyncStatus()
	out := rows[:0]
	for _, row := range rows {
		if callerSees(r, row.Namespace) {
			out = append(out, row)
		}
	}
	writeJSON(w, out)
}

// SyncStatus returns a copy of every proxy's sync state, sorted by id.
func (s *Server) SyncStatus() []SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var snapVer string
	if s.ix != nil {
		snapVer = s.ix.Snapshot().Version()
	}
	out := make([]SyncStatus, 0, len(s.conns))
	for _, c := range s.conns {
		row := SyncStatus{Proxy: c.node, Connection: c.id, Type: c.proxy.Type, Namespace: c.proxy.Namespace, Types: map[string]*TypeSync{},
			ConnectedAt: c.connectedAt, SnapshotVersion: snapVer}
		for url, st := range c.status {
			row.Types[shortType(url)] = typeSync(c, url, st)
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connection < out[j].Connection })
	return out
}

// typeSync copies st; s.mu must be held.
func typeSync(c *conn, url string, st *typeStatus) *TypeSync {
	ts := &TypeSync{Sent: st.Sent, Acked: st.Acked, Pending: st.Pending, Nacks: st.Nacks, NackedVer: st.NackedVer, LastNack: st.LastNack}
	if c.gen != nil {
		ts.Latest = c.gen.version(url)
	}
	if st.Pending != "" && !st.PendingSince.IsZero() {
		since := st.PendingSince
		ts.PendingSince = &since
	}
	return ts
}

// Connection is one row of /debug/connections.
type Connection struct {
	Proxy      string `json:"proxy"`
	Connection string `json:"connection"`
	// Secure is true for a stream over mTLS whose node matched the
	// client certificate's identity.
	Secure      bool           `json:"secure"`
	Type        mesh.ProxyType `json:"type"`
	Namespace   string         `json:"namespace"`
	Labels      mesh.Labels    `json:"labels,omitempty"`
	IPs         []string       `json:"ips,omitempty"`
	ConnectedAt time.Time      `json:"connectedAt"`
}

// Connections writes every connected proxy.
func (s *Server) Connections(w http.ResponseWriter, r *http.Request) {
	rows := s.ConnectionList()
	out := rows[:0]
	for _, row := range rows {
		if callerSees(r, row.Namespace) {
			out = append(out, row)
		}
	}
	writeJSON(w, out)
}

// callerSees reports whether the request's caller may see proxies of
// namespace ns (everything without a gate's caller).
func callerSees(r *http.Request, ns string) bool {
	c, ok := access.FromContext(r.Context())
	return !ok || c.Sees(ns)
}

func sees(r *http.Request, c *conn) bool { return callerSees(r, c.proxy.Namespace) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ConnectionList returns every connected proxy, sorted by id.
func (s *Server) ConnectionList() []Connection {
	s.mu.Lock()
	out := make([]Connection, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, Connection{Proxy: c.node, Connection: c.id, Secure: c.secure, Type: c.proxy.Type, Namespace: c.proxy.Namespace,
			Labels: c.proxy.Labels, IPs: c.proxy.IPs, ConnectedAt: c.connectedAt})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Connection < out[j].Connection })
	return out
}
