package als

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Record is one call a proxy observed, as Ward keeps it: who reported
// it, who called whom, over what, and how authorisation decided.
type Record struct {
	Time time.Time `json:"time"`
	// Reporter is the SPIFFE ID in the reporting proxy's certificate.
	Reporter string `json:"reporter"`
	// Side is "server" (the proxy of the called workload: an inbound|
	// cluster) or "client" (the caller's proxy).
	Side string `json:"side"`
	// Protocol is Istio's request_protocol: "grpc" for an HTTP request
	// with a gRPC content-type, else "http"; "tcp" for a TCP connection.
	Protocol string `json:"protocol"`
	// GRPCStatus is Istio's grpc_response_status of a gRPC request (the
	// grpc-status trailer or header, else the response code's mapping);
	// "" for other requests and gRPC requests without a response.
	GRPCStatus string `json:"grpc_response_status,omitempty"`
	// Source and Destination are SPIFFE IDs where known: the server side
	// knows its peer's certificate, the client side knows itself.
	Source        string `json:"source_principal,omitempty"`
	Destination   string `json:"destination_principal,omitempty"`
	SourceAddress string `json:"source_address,omitempty"`
	Cluster       string `json:"upstream_cluster,omitempty"`
	// DestinationService is the service the call was addressed to (host,
	// name, namespace), filled when the store has Metrics that know the
	// mesh (Metrics.Resolve); the metric labels of the same names are
	// these values.
	DestinationService          string `json:"destination_service,omitempty"`
	DestinationServiceName      string `json:"destination_service_name,omitempty"`
	DestinationServiceNamespace string `json:"destination_service_namespace,omitempty"`
	Method                      string `json:"method,omitempty"`
	Path                        string `json:"path,omitempty"` // without query or fragment
	Authority                   string `json:"authority,omitempty"`
	ResponseCode                uint32 `json:"response_code,omitempty"`
	Details                     string `json:"response_code_details,omitempty"`
	// ResponseFlags are Envoy's response flags ("UH,UF"; "" for none).
	ResponseFlags string `json:"response_flags,omitempty"`
	MTLS          bool   `json:"mtls"`
	Denied        bool   `json:"denied"`
	Policy        string `json:"policy,omitempty"`
	Rule          string `json:"rule,omitempty"`
	DecisionID    string `json:"decision_id,omitempty"`
	DurationUS    int64  `json:"duration_us,omitempty"`
	// ReceivedBytes and SentBytes are a TCP connection's bytes from and
	// to the downstream peer.
	ReceivedBytes uint64 `json:"received_bytes,omitempty"`
	SentBytes     uint64 `json:"sent_bytes,omitempty"`
}

// EdgeKey identifies an edge: who called what, how.
type EdgeKey struct {
	Source      string `json:"source"`
	Destination string `json:"destination"` // principal, else cluster
	Protocol    string `json:"protocol"`
	MTLS        bool   `json:"mtls"`
}

// Edge aggregates the records of one EdgeKey.
type Edge struct {
	EdgeKey
	Allowed   uint64    `json:"allowed"`
	Denied    uint64    `json:"denied"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// StoreConfig bounds a Store.
type StoreConfig struct {
	// MaxRecords is how many recent records are kept (default 10 000);
	// older ones are overwritten.
	MaxRecords int
	// MaxEdges bounds the edge table (default 10 000); records of new
	// edges beyond it are counted in Stats.DroppedEdges, not aggregated.
	MaxEdges int
	// Metrics, when set, counts every record in Istio's standard metrics.
	Metrics *Metrics
	// Sink, when set, receives every record as a JSON line (a
	// rotate.File under the state dir in ward serve). Lines are buffered
	// and written by Flush, once per received message.
	Sink io.Writer
}

// Stats counts what a Store has seen.
type Stats struct {
	Records      uint64 `json:"records"` // added since start
	Kept         int    `json:"kept"`
	Edges        int    `json:"edges"`
	DroppedEdges uint64 `json:"dropped_edges"`
	// SinkErrors counts failed writes of records to the Sink.
	SinkErrors uint64 `json:"sink_errors"`
}

// Store keeps recent records in a ring and aggregates all of them into
// edges, both bounded. It is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	cfg      StoreConfig
	ring     []Record
	next     int // ring index of the next write
	total    uint64
	edges    map[EdgeKey]*Edge
	droppedE uint64
	pending  bytes.Buffer // JSON lines not yet written to the sink
	enc      *json.Encoder
	sinkErrs uint64
}

// flushAt is the buffered size at which Add writes to the sink without
// waiting for Flush.
const flushAt = 64 << 10

// NewStore returns an empty store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 10000
	}
	if cfg.MaxEdges <= 0 {
		cfg.MaxEdges = 10000
	}
	s := &Store{cfg: cfg, edges: map[EdgeKey]*Edge{}}
	s.enc = json.NewEncoder(&s.pending)
	return s
}

// Add keeps r and counts it in its edge. With Metrics, r's destination
// service is resolved first (Metrics.Resolve), so that the kept record,
// its JSON line and its metric labels say the same.
func (s *Store) Add(r Record) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Resolve(&r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < s.cfg.MaxRecords {
		if len(s.ring) == cap(s.ring) {
			s.growRing()
		}
		s.ring = append(s.ring, r)
	} else {
		s.ring[s.next] = r
	}
	s.next = (s.next + 1) % s.cfg.MaxRecords
	s.total++
	s.addEdge(r)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Observe(r)
	}
	if s.cfg.Sink != nil {
		s.encode(r)
	}
}

// growRing doubles the ring's capacity up to exactly MaxRecords. append
// would overshoot the bound by up to a quarter (its growth is rounded to
// allocation size classes): 2,378 unused 272-byte slots, 65 bytes per
// kept record, in a full ring of 10,000.
func (s *Store) growRing() {
	ring := make([]Record, len(s.ring), min(max(2*cap(s.ring), 64), s.cfg.MaxRecords))
	copy(ring, s.ring)
	s.ring = ring
}

// encode buffers r as a JSON line. It is a function of its own so that r
// escapes to the heap only when there is a sink (keeping Add free of
// allocations otherwise).
func (s *Store) encode(r Record) {
	_ = s.enc.Encode(r) // a Record always encodes; Encode adds the newline
	if s.pending.Len() >= flushAt {
		s.flushLocked()
	}
}

// Flush writes the buffered JSON lines to the sink.
func (s *Store) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

func (s *Store) flushLocked() {
	if s.cfg.Sink == nil || s.pending.Len() == 0 {
		return
	}
	if _, err := s.cfg.Sink.Write(s.pending.Bytes()); err != nil {
		s.sinkErrs++
	}
	s.pending.Reset()
}

func (s *Store) addEdge(r Record) {
	k := EdgeKey{Source: r.Source, Destination: r.Destination, Protocol: r.Protocol, MTLS: r.MTLS}
	if k.Destination == "" {
		k.Destination = r.Cluster
	}
	e, ok := s.edges[k]
	if !ok {
		if len(s.edges) >= s.cfg.MaxEdges {
			s.droppedE++
			return
		}
		e = &Edge{EdgeKey: k, FirstSeen: r.Time}
		s.edges[k] = e
	}
	if r.Denied {
		e.Denied++
	} else {
		e.Allowed++
	}
	if r.Time.Before(e.FirstSeen) {
		e.FirstSeen = r.Time
	}
	if r.Time.After(e.LastSeen) {
		e.LastSeen = r.Time
	}
}

// Records returns the kept records, oldest first.
func (s *Store) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < s.cfg.MaxRecords {
		return append([]Record(nil), s.ring...)
	}
	return append(append([]Record(nil), s.ring[s.next:]...), s.ring[:s.next]...)
}

// Edges returns the edges sorted by source, destination, protocol, mTLS.
func (s *Store) Edges() []Edge {
	s.mu.Lock()
	out := make([]Edge, 0, len(s.edges))
	for _, e := range s.edges {
		out = append(out, *e)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].EdgeKey, out[j].EdgeKey
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return !a.MTLS && b.MTLS
	})
	return out
}

// Stats reports the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Records: s.total, Kept: len(s.ring), Edges: len(s.edges), DroppedEdges: s.droppedE, SinkErrors: s.sinkErrs}
}

// ReadRecords decodes call records written as JSON lines (the store's
// file). Blank lines are skipped; a line that is not a record is an
// error naming it, except a torn last line (the server was writing),
// which is skipped.
func ReadRecords(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Record
	bad := 0
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if bad > 0 {
			return nil, fmt.Errorf("read call records: line %d: not a call record", bad)
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			bad = n
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read call records: %w", err)
	}
	return out, nil
}
